/**
 * The scratch folder and failure context of a crash test file: child servers are killed and the
 * folder removed after the file's tests; `note()` keeps a server's stderr for the failure report.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { killAllChildServers, type ChildServer } from './child-server.js';

export interface CrashScratch {
  readonly dir: string;
  /** Lines printed when a test fails (reset it at the start of each test). */
  readonly context: string[];
  /** Remembers a server's stderr for the failure report. */
  note: (label: string, server: ChildServer) => void;
}

/** Call at module level of a test file. */
export function crashScratch(prefix: string): CrashScratch {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const context: string[] = [];
  afterAll(async () => {
    await killAllChildServers();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    context,
    note: (label, server) => context.push(`--- ${label} (pid ${server.pid}) stderr:\n${server.stderr()}`),
  };
}
