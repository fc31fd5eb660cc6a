import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

/**
 * An S3 endpoint for tests: s3rver in a child process, or whatever `S3_TEST_ENDPOINT` names (with
 * `S3_TEST_ACCESS_KEY_ID`, `S3_TEST_SECRET_ACCESS_KEY`, `S3_TEST_REGION`), e.g. a MinIO, so the
 * same tests run against a real store.
 *
 * s3rver runs in its own `node --openssl-legacy-provider` process: it encrypts ListObjectsV2
 * continuation tokens with DES, which Node refuses without that flag (every truncated listing would
 * answer 500).
 */
export interface S3TestEndpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Stops s3rver and removes its data directory (a no-op for an endpoint from the environment). */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

/**
 * The child: argv = [s3rver module path, data directory]. Prints `S3RVER_PORT=<port>` once
 * listening, and exits when its stdin closes (the test process went away, even by kill -9).
 */
const CHILD_SCRIPT = `
const [modulePath, directory] = process.argv.slice(1);
const S3rver = require(modulePath);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
server.run().then(
  (address) => process.stdout.write('S3RVER_PORT=' + address.port + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err) + '\\n'); process.exit(1); },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killLiveChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** Starts s3rver on 127.0.0.1 and a free port, unless S3_TEST_ENDPOINT names a store to use instead. */
export async function startS3rver(): Promise<S3TestEndpoint> {
  const external = process.env.S3_TEST_ENDPOINT;
  if (external !== undefined && external !== '') {
    return {
      endpoint: external,
      accessKeyId: process.env.S3_TEST_ACCESS_KEY_ID ?? '',
      secretAccessKey: process.env.S3_TEST_SECRET_ACCESS_KEY ?? '',
      region: process.env.S3_TEST_REGION ?? 'us-east-1',
      close: () => Promise.resolve(),
    };
  }
  if (!exitHookInstalled) {
    process.on('exit', killLiveChildren);
    exitHookInstalled = true;
  }
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
  const modulePath = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD_SCRIPT, modulePath, directory], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
  });
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    fs.rmSync(directory, { recursive: true, force: true });
  };

  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        const m = /S3RVER_PORT=(\d+)/.exec(stdout);
        if (m?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited before listening (code ${child.exitCode ?? child.signalCode}): ${stderr}`));
      });
    });
    return { endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', region: 'us-east-1', close };
  } catch (err) {
    await close();
    throw err;
  }
}
