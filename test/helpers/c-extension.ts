import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * Tiny SQLite extensions compiled for the `--extensions-path` tests with the machine's C compiler,
 * against the sqlite3ext.h of the SQLite that better-sqlite3 embeds. The compiler must be there
 * (`.ci/run` installs it when missing): a missing tool fails the tests instead of skipping them.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SQLITE_HEADERS = path.join(ROOT, 'node_modules/better-sqlite3/deps/sqlite3');
const run = promisify(execFile);

export function requireCc(): void {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    throw new Error('a C compiler (`cc`) is needed by the --extensions-path tests to build SQLite extensions (Debian package gcc)', { cause: err });
  }
  if (!fs.existsSync(path.join(SQLITE_HEADERS, 'sqlite3ext.h'))) throw new Error(`sqlite3ext.h not found in ${SQLITE_HEADERS} (is better-sqlite3 installed?)`);
}

/** Builds `<dir>/<file>`: an extension defining the SQL function `<fn>()` that returns `value`. */
export async function buildConstantExtension(dir: string, file: string, fn: string, value: number): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(fn) || !Number.isInteger(value)) throw new Error(`bad extension function ${fn} = ${value}`);
  const source = path.join(dir, `${path.parse(file).name}.c`);
  fs.writeFileSync(
    source,
    `#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

static void constant(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_int(ctx, ${value});
}

int sqlite3_extension_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  (void)err;
  SQLITE_EXTENSION_INIT2(api);
  return sqlite3_create_function(db, "${fn}", 0, SQLITE_UTF8 | SQLITE_DETERMINISTIC, 0, constant, 0, 0);
}
`,
  );
  const out = path.join(dir, file);
  try {
    await run('cc', ['-shared', '-fPIC', '-o', out, source, `-I${SQLITE_HEADERS}`]);
  } catch (err) {
    throw new Error(`cc could not build ${file}: ${(err as { stderr?: string }).stderr ?? String(err)}`, { cause: err });
  }
  fs.rmSync(source);
  return out;
}

export function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}
