import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { fsReason } from '../engine/fs-errors.js';

/** The list of trusted extensions inside the `--extensions-path` directory (sqld's name). */
export const TRUSTED_LIST = 'trusted.lst';

const FLAG = '--extensions-path';
const CODE = 'CONFIG_EXTENSIONS';
const SHA256_RE = /^[0-9a-f]{64}$/i;

interface ListedExtension {
  sha256: string;
  name: string;
  line: number;
}

function fail(message: string, cause?: unknown): never {
  throw new ConfigError(CODE, `${FLAG}: ${message}`, cause === undefined ? undefined : { cause });
}

/** Parses trusted.lst: `<sha256 in hex> <file name>` per non-empty line, as `sha256sum` writes it. */
function parseTrustedList(text: string, listFile: string): ListedExtension[] {
  const listed: ListedExtension[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const fields = raw.trim().split(/\s+/).filter((f) => f !== '');
    if (fields.length === 0) return;
    const [sha256, name] = fields;
    if (fields.length !== 2 || sha256 === undefined || name === undefined || !SHA256_RE.test(sha256)) {
      fail(`${listFile} line ${line} is malformed: expected "<sha256 in hex> <file name>" (file names cannot contain whitespace)`);
    }
    if (name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
      fail(`${listFile} line ${line} is malformed: \`${name}\` must be the name of a file in the directory itself (no path separators, no ..)`);
    }
    if (seen.has(name)) fail(`${listFile} line ${line} is malformed: ${name} is listed twice`);
    seen.add(name);
    listed.push({ sha256: sha256.toLowerCase(), name, line });
  });
  return listed;
}

/**
 * `--extensions-path <dir>` (sqld's): reads `<dir>/trusted.lst` and checks the sha256 of every
 * extension it lists. Returns their absolute paths in the list's order, to be loaded into every
 * client connection; files of the directory that are not listed are never loaded. Without the
 * flag extension loading is off (an empty list). Throws a ConfigError naming the file and the
 * problem: a missing or unreadable list or extension, a malformed line, a hash that differs.
 */
export async function resolveTrustedExtensions(dirFlag: string | undefined): Promise<readonly string[]> {
  if (dirFlag === undefined || dirFlag === '') return [];
  const dir = path.resolve(dirFlag);
  const listFile = path.join(dir, TRUSTED_LIST);
  let text: string;
  try {
    text = await fs.readFile(listFile, 'utf8');
  } catch (err) {
    fail(`cannot read ${listFile}: ${fsReason(err)}`, err);
  }
  const paths: string[] = [];
  for (const ext of parseTrustedList(text, listFile)) {
    const file = path.join(dir, ext.name);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') fail(`trusted extension ${file} (${TRUSTED_LIST} line ${ext.line}) is missing`, err);
      fail(`cannot read trusted extension ${file}: ${fsReason(err)}`, err);
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== ext.sha256) {
      fail(`trusted extension ${file} does not match its sha256 in ${TRUSTED_LIST} line ${ext.line} (listed ${ext.sha256}, the file has ${actual})`);
    }
    paths.push(file);
  }
  return paths;
}
