/**
 * Primary or replica (spec §1): `--primary-grpc-url` makes a replica; otherwise the server is a
 * primary, with an inter-node gRPC port when `--grpc-listen-addr` is given. TLS files are read here,
 * once, so a missing certificate is a start-up error and not a failed handshake later.
 */
import fs from 'node:fs/promises';
import { ConfigError } from '../errors.js';
import { parseListenAddr, parsePositive, type ListenAddr } from './parse.js';

export interface ClusterFlags {
  'grpc-listen-addr'?: string | undefined;
  'grpc-tls'?: boolean | undefined;
  'grpc-cert-file'?: string | undefined;
  'grpc-key-file'?: string | undefined;
  'grpc-ca-cert-file'?: string | undefined;
  'primary-grpc-url'?: string | undefined;
  'primary-grpc-tls'?: boolean | undefined;
  'primary-grpc-cert-file'?: string | undefined;
  'primary-grpc-key-file'?: string | undefined;
  'primary-grpc-ca-cert-file'?: string | undefined;
  'grpc-node-secret'?: string | undefined;
  'write-forward-timeout-ms'?: number | undefined;
}

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** Client certificates must be signed by this CA (mutual TLS). */
  ca: Buffer;
}

export interface ClientTls {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

export type ClusterConfig =
  | {
      role: 'primary';
      /** `--grpc-listen-addr`: the inter-node port for replicas, or null (standalone). */
      grpc: { listen: ListenAddr; tls: ServerTls | null } | null;
      /** `--grpc-node-secret`: replicas presenting it are trusted like mTLS peers (forwarded principals). */
      nodeSecret: string | null;
    }
  | {
      role: 'replica';
      primary: { url: string; tls: ClientTls | null };
      nodeSecret: string | null;
      /** `--write-forward-timeout-ms`: a forwarded request without an answer in this long fails. */
      forwardTimeoutMs: number;
    };

export const DEFAULT_FORWARD_TIMEOUT_MS = 15_000;

async function readFile(path: string | undefined, flag: string): Promise<Buffer | undefined> {
  if (path === undefined || path === '') return undefined;
  try {
    return await fs.readFile(path);
  } catch (err) {
    throw new ConfigError('CONFIG_TLS_FILE', `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

function primaryUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError('CONFIG_PRIMARY_URL', `--primary-grpc-url: not a URL: \`${text}\``, { hint: 'For example http://127.0.0.1:5001.' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('CONFIG_PRIMARY_URL', `--primary-grpc-url: expected an http:// or https:// URL, got \`${text}\``, { hint: 'For example http://127.0.0.1:5001.' });
  }
  if (url.port === '' && url.protocol === 'http:') {
    throw new ConfigError('CONFIG_PRIMARY_URL', `--primary-grpc-url: give the port of the primary's --grpc-listen-addr, got \`${text}\``, { hint: 'For example http://127.0.0.1:5001.' });
  }
  return url;
}

export async function resolveClusterConfig(flags: ClusterFlags): Promise<ClusterConfig> {
  const nodeSecret = flags['grpc-node-secret'] || null;
  const primary = flags['primary-grpc-url'];
  if (primary !== undefined && primary !== '') {
    if (flags['grpc-listen-addr']) {
      throw new ConfigError('CONFIG_CONFLICT', '--primary-grpc-url and --grpc-listen-addr cannot be used together', { hint: 'A replica (--primary-grpc-url) has no inter-node port of its own.' });
    }
    const url = primaryUrl(primary);
    const files = {
      cert: await readFile(flags['primary-grpc-cert-file'], '--primary-grpc-cert-file'),
      key: await readFile(flags['primary-grpc-key-file'], '--primary-grpc-key-file'),
      ca: await readFile(flags['primary-grpc-ca-cert-file'], '--primary-grpc-ca-cert-file'),
    };
    if ((files.cert === undefined) !== (files.key === undefined)) {
      throw new ConfigError('CONFIG_TLS', '--primary-grpc-cert-file and --primary-grpc-key-file go together');
    }
    const tlsWanted = Boolean(flags['primary-grpc-tls']) || url.protocol === 'https:';
    const tls: ClientTls | null = tlsWanted
      ? { ...(files.cert ? { cert: files.cert } : {}), ...(files.key ? { key: files.key } : {}), ...(files.ca ? { ca: files.ca } : {}) }
      : null;
    if (!tlsWanted && (files.cert || files.key || files.ca)) {
      throw new ConfigError('CONFIG_TLS', '--primary-grpc-cert-file, --primary-grpc-key-file and --primary-grpc-ca-cert-file need --primary-grpc-tls (or an https:// URL)');
    }
    // grpc-js wants a scheme-less target; TLS is chosen by the credentials.
    const target = `${tls ? 'https' : 'http'}://${url.host}`;
    return {
      role: 'replica',
      primary: { url: target, tls },
      nodeSecret,
      forwardTimeoutMs: parsePositive(flags['write-forward-timeout-ms'], '--write-forward-timeout-ms', { integer: true }) ?? DEFAULT_FORWARD_TIMEOUT_MS,
    };
  }
  for (const flag of ['primary-grpc-tls', 'primary-grpc-cert-file', 'primary-grpc-key-file', 'primary-grpc-ca-cert-file'] as const) {
    if (flags[flag]) throw new ConfigError('CONFIG_CONFLICT', `--${flag} is a replica setting: it needs --primary-grpc-url`);
  }
  const listen = flags['grpc-listen-addr'];
  if (listen === undefined || listen === '') {
    for (const flag of ['grpc-tls', 'grpc-cert-file', 'grpc-key-file', 'grpc-ca-cert-file'] as const) {
      if (flags[flag]) throw new ConfigError('CONFIG_CONFLICT', `--${flag} needs --grpc-listen-addr`);
    }
    return { role: 'primary', grpc: null, nodeSecret };
  }
  const addr = parseListenAddr(listen, '--grpc-listen-addr');
  if (!flags['grpc-tls']) {
    for (const flag of ['grpc-cert-file', 'grpc-key-file', 'grpc-ca-cert-file'] as const) {
      if (flags[flag]) throw new ConfigError('CONFIG_CONFLICT', `--${flag} needs --grpc-tls`);
    }
    return { role: 'primary', grpc: { listen: addr, tls: null }, nodeSecret };
  }
  const cert = await readFile(flags['grpc-cert-file'], '--grpc-cert-file');
  const key = await readFile(flags['grpc-key-file'], '--grpc-key-file');
  const ca = await readFile(flags['grpc-ca-cert-file'], '--grpc-ca-cert-file');
  if (!cert || !key || !ca) {
    throw new ConfigError('CONFIG_TLS', '--grpc-tls needs --grpc-cert-file, --grpc-key-file and --grpc-ca-cert-file', { hint: 'Replicas must present a client certificate signed by the CA (mutual TLS).' });
  }
  return { role: 'primary', grpc: { listen: addr, tls: { cert, key, ca } }, nodeSecret };
}
