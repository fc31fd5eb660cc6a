/**
 * What an endpoint setting means: `file:///path` is a local directory, `http(s)://…` an S3-compatible
 * store, no endpoint at all is AWS (as in bottomless). Loads no backend (configuration code imports
 * this without paying for the AWS SDK).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../errors.js';
import type { S3StorageOptions } from './s3-storage.js';

/** What openStorage needs: a directory and a bucket (a subdirectory of it), or S3 settings. */
export type StorageConfig = { kind: 'local'; dir: string; bucket: string } | ({ kind: 's3' } & S3StorageOptions);

/** What an endpoint setting selects. */
export type ParsedEndpoint = { kind: 'local'; dir: string } | { kind: 's3'; endpoint: string | null };

const ENDPOINT_CODE = 'CONFIG_BOTTOMLESS_ENDPOINT';
const ENDPOINT_HINT = 'use http(s)://host[:port] for an S3-compatible store, file:///absolute/path for a local directory, or leave it unset for AWS';

/**
 * Reads an endpoint setting: unset or empty means AWS; `http(s)://…` an S3 endpoint, kept as given;
 * `file:///abs/path` (or `file:/abs/path`) a local directory, percent escapes decoded.
 * Anything else is a ConfigError (`CONFIG_BOTTOMLESS_ENDPOINT`).
 */
export function parseEndpoint(endpoint: string | undefined): ParsedEndpoint {
  if (endpoint === undefined || endpoint.trim() === '') return { kind: 's3', endpoint: null };
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(endpoint)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint is not a valid URL: ${endpoint}`, { hint: ENDPOINT_HINT });
    }
    if (url.hostname === '') throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint names no host: ${endpoint}`, { hint: ENDPOINT_HINT });
    return { kind: 's3', endpoint };
  }
  if (scheme === 'file') return { kind: 'local', dir: parseFileEndpoint(endpoint) };
  throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint must be an http(s):// or file:// URL: ${endpoint}`, { hint: ENDPOINT_HINT });
}

function parseFileEndpoint(endpoint: string): string {
  const hint = 'write a local directory as file:///absolute/path (three slashes; escape spaces as %20)';
  // `file:relative` would parse as `file:///relative`: insist on the slash.
  if (!/^file:\//i.test(endpoint)) throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint is not an absolute file URL: ${endpoint}`, { hint });
  let dir: string;
  try {
    const url = new URL(endpoint);
    if (url.search !== '' || url.hash !== '') throw new Error('a file URL with a query or a fragment');
    dir = fileURLToPath(url);
  } catch (err) {
    throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint is not a usable file URL: ${endpoint} (${(err as Error).message})`, { hint, cause: err });
  }
  if (!path.isAbsolute(dir)) throw new ConfigError(ENDPOINT_CODE, `the bottomless endpoint is not an absolute path: ${endpoint}`, { hint });
  return path.normalize(dir);
}
