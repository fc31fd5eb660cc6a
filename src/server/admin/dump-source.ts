/**
 * Where a create's `dump_url` points (spec §9): `file:` URLs name an absolute path to an existing
 * file on the server's machine, `http:`/`https:` URLs are fetched. Errors are sqld's load-dump texts
 * (HTTP 400). The dump is read whole before the namespace is created.
 */
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { DumpLoadError } from '../../engine/dump-load.js';
import { fsReason } from '../../engine/fs-errors.js';

/** Dumps are read into memory: larger ones are refused rather than exhausting it. */
const MAX_DUMP_BYTES = 1024 * 1024 * 1024;
/** A dump server that does not answer within this long fails the create. */
const FETCH_TIMEOUT_MS = 60_000;

function fail(code: string, message: string, cause?: unknown): DumpLoadError {
  return new DumpLoadError(code, message, cause === undefined ? undefined : { cause });
}

async function readDumpFile(raw: string): Promise<string> {
  // `file:relative` and `file://host/…` name no absolute local path.
  const rest = raw.slice('file:'.length);
  const local = rest.startsWith('///') || (rest.startsWith('/') && !rest.startsWith('//'));
  let file: string;
  try {
    if (!local) throw new Error('not absolute');
    file = fileURLToPath(new URL(raw));
  } catch {
    throw fail('DUMP_PATH_NOT_ABSOLUTE', `The passed dump file path is not absolute: ${rest}`);
  }
  let size: number;
  try {
    size = (await fs.stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw fail('DUMP_FILE_MISSING', `The passed dump file path doesn't exist: ${file}`, err);
    throw fail('DUMP_READ', `Error while loading dump: cannot read ${file}: ${fsReason(err)}`, err);
  }
  if (size > MAX_DUMP_BYTES) throw fail('DUMP_TOO_LARGE', `Error while loading dump: the dump is larger than ${MAX_DUMP_BYTES} bytes`);
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw fail('DUMP_READ', `Error while loading dump: cannot read ${file}: ${fsReason(err)}`, err);
  }
}

async function fetchDump(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
  } catch (err) {
    throw fail('DUMP_FETCH', `Error while loading dump: cannot fetch ${url}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw fail('DUMP_FETCH', `Error while loading dump: ${url} answered HTTP ${res.status}`);
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > MAX_DUMP_BYTES) {
    await res.body?.cancel();
    throw fail('DUMP_TOO_LARGE', `Error while loading dump: the dump is larger than ${MAX_DUMP_BYTES} bytes`);
  }
  try {
    return await res.text();
  } catch (err) {
    throw fail('DUMP_FETCH', `Error while loading dump: cannot fetch ${url}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/** The dump's SQL text. */
export function readDump(url: string): Promise<string> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'file') return readDumpFile(url);
  if (scheme === 'http' || scheme === 'https') return fetchDump(url);
  if (scheme === undefined) return Promise.reject(fail('DUMP_URL', `Invalid dump url: ${url}`));
  return Promise.reject(fail('DUMP_URL_SCHEME', `Unsupported dump url scheme: ${scheme}`));
}
