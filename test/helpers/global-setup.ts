import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TEMP_VARS = ['TMPDIR', 'TMP', 'TEMP'] as const;

/**
 * Tests that run `bin/run.js` as a child process (crash tests, CLI) need dist/ to match src/:
 * compile once before the suite.
 *
 * Every temporary file of the run goes into one run root under the caller's temp dir: TMPDIR (and
 * TMP/TEMP) point at it before the test workers start, so `os.tmpdir()` in tests, helpers and the
 * servers they spawn (which inherit the environment) lands inside it. The returned teardown reports
 * whatever a test left behind and removes the root, also after failed tests.
 */
export default function setup(): () => void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });

  const saved = TEMP_VARS.map((name) => [name, process.env[name]] as const);
  const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-test-run-'));
  for (const name of TEMP_VARS) process.env[name] = runRoot;

  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    let left: string[] = [];
    try {
      left = fs.readdirSync(runRoot);
    } catch {
      // Already gone: nothing to report or remove.
    }
    if (left.length > 0) {
      console.error(`test temp root: ${left.length} entr${left.length === 1 ? 'y' : 'ies'} left behind by tests (removed now): ${left.sort().join(', ')}`);
    }
    fs.rmSync(runRoot, { recursive: true, force: true });
  };
}
