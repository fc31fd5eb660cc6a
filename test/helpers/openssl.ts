import { execFileSync } from 'node:child_process';

/**
 * The mTLS tests make their certificates with the `openssl` CLI (Node cannot issue X.509). It must
 * be there (`.ci/run` installs it when missing): a missing tool fails the tests instead of skipping them.
 */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch (err) {
    throw new Error('the openssl command-line tool is needed by the mTLS tests (Debian package openssl)', { cause: err });
  }
}
