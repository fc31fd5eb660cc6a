import fs from 'node:fs';
import { Flags } from '@oclif/core';
import { ConfigError } from '../errors.js';
import { parsePositive } from './parse.js';

/**
 * What one TCP connection may cost the server (docs/LIMITS.md): how long it may take to send its
 * request, how long it may sit idle, and how many connections there may be — in all and from one
 * remote address. sqld has no such flags (hyper's defaults); ours carry our own names and variables.
 */
export interface ConnectionLimits {
  /** Until a request's headers are complete (also a new connection's first request). */
  headersTimeoutMs: number;
  /** Until a request, body included, is complete (never cuts a response being sent). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection between two requests. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way while a request is in progress (a client that stopped reading). */
  idleTimeoutMs: number;
  /** Connections (HTTP and WebSocket, all listeners) open at once; beyond it new ones are closed at once. */
  maxConnections: number;
  /** Connections from one remote address; beyond it a request gets 503 and its connection is closed. */
  maxConnectionsPerAddress: number;
  /** A WebSocket connection's time to send its Hrana `hello`. */
  wsHelloTimeoutMs: number;
  /** Where maxConnections came from (the banner and docs say it): a flag or the file-descriptor limit. */
  maxConnectionsSource: 'flag' | 'fd-limit';
}

export interface ConnectionFlags {
  'http-headers-timeout-s'?: string | undefined;
  'http-request-timeout-s'?: string | undefined;
  'http-keep-alive-timeout-s'?: string | undefined;
  'http-idle-timeout-s'?: string | undefined;
  'max-connections'?: number | undefined;
  'max-connections-per-address'?: number | undefined;
  'ws-hello-timeout-s'?: string | undefined;
}

export const CONNECTION_DEFAULTS = {
  headersTimeoutS: 10,
  requestTimeoutS: 120,
  keepAliveTimeoutS: 10,
  idleTimeoutS: 120,
  wsHelloTimeoutS: 10,
} as const;

export const connectionFlags = {
  'http-headers-timeout-s': Flags.string({
    env: 'LIBSQLCTL_HTTP_HEADERS_TIMEOUT_S',
    description: `Seconds a client has to send a request's headers (also the first request of a new connection). Default ${CONNECTION_DEFAULTS.headersTimeoutS}.`,
  }),
  'http-request-timeout-s': Flags.string({
    env: 'LIBSQLCTL_HTTP_REQUEST_TIMEOUT_S',
    description: `Seconds a client has to send a whole request, body included (responses are never cut). Default ${CONNECTION_DEFAULTS.requestTimeoutS}.`,
  }),
  'http-keep-alive-timeout-s': Flags.string({
    env: 'LIBSQLCTL_HTTP_KEEP_ALIVE_TIMEOUT_S',
    description: `Seconds an idle keep-alive connection stays open between requests. Default ${CONNECTION_DEFAULTS.keepAliveTimeoutS}.`,
  }),
  'http-idle-timeout-s': Flags.string({
    env: 'LIBSQLCTL_HTTP_IDLE_TIMEOUT_S',
    description: `Seconds without traffic either way before an HTTP connection with a request in progress is closed (a client that stopped reading). Default ${CONNECTION_DEFAULTS.idleTimeoutS}.`,
  }),
  'max-connections': Flags.integer({
    env: 'LIBSQLCTL_MAX_CONNECTIONS',
    description: 'TCP connections open at once (HTTP and WebSocket); beyond it new ones are closed. Default: three quarters of the open-file limit, less 64 for the databases.',
  }),
  'max-connections-per-address': Flags.integer({
    env: 'LIBSQLCTL_MAX_CONNECTIONS_PER_ADDRESS',
    description: 'Connections from one remote address; beyond it requests get 503. Default: half of --max-connections.',
  }),
  'ws-hello-timeout-s': Flags.string({
    env: 'LIBSQLCTL_WS_HELLO_TIMEOUT_S',
    description: `Seconds a new Hrana WebSocket connection has to send its hello. Default ${CONNECTION_DEFAULTS.wsHelloTimeoutS}.`,
  }),
};

/** Descriptors kept for the databases (each namespace holds several), logs and the process itself. */
const FD_RESERVE = 64;
/** Used when the open-file limit cannot be read or is unlimited. */
const FALLBACK_MAX_CONNECTIONS = 4096;

/** The soft open-file limit (`/proc/self/limits`), or null where it cannot be read (not Linux). */
export function readOpenFileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m || m[1] === 'unlimited') return null;
  const n = Number(m[1]);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** Three quarters of the limit for sockets, less a reserve for SQLite's own descriptors. */
export function connectionsForFdLimit(limit: number | null): number {
  if (limit === null) return FALLBACK_MAX_CONNECTIONS;
  return Math.max(16, Math.floor(limit * 0.75) - FD_RESERVE);
}

function seconds(flags: ConnectionFlags, name: keyof ConnectionFlags & `${string}-s`, fallback: number): number {
  return (parsePositive(flags[name], `--${name}`) ?? fallback) * 1000;
}

export function resolveConnectionLimits(flags: ConnectionFlags, fdLimit: number | null = readOpenFileLimit()): ConnectionLimits {
  const explicit = parsePositive(flags['max-connections'], '--max-connections', { integer: true });
  const maxConnections = explicit ?? connectionsForFdLimit(fdLimit);
  if (explicit !== null && fdLimit !== null && explicit > fdLimit - FD_RESERVE) {
    throw new ConfigError('CONFIG_MAX_CONNECTIONS', `--max-connections ${explicit} is more than the open-file limit (${fdLimit}) leaves for sockets`, {
      hint: `raise the limit (ulimit -n) or give at most ${fdLimit - FD_RESERVE}`,
    });
  }
  const headersTimeoutMs = seconds(flags, 'http-headers-timeout-s', CONNECTION_DEFAULTS.headersTimeoutS);
  const requestTimeoutMs = seconds(flags, 'http-request-timeout-s', CONNECTION_DEFAULTS.requestTimeoutS);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('CONFIG_TIMEOUTS', `--http-headers-timeout-s (${headersTimeoutMs / 1000}) is longer than --http-request-timeout-s (${requestTimeoutMs / 1000})`, {
      hint: 'the headers are part of the request: give a headers timeout at most as long as the request timeout',
    });
  }
  const perAddress = parsePositive(flags['max-connections-per-address'], '--max-connections-per-address', { integer: true }) ?? Math.max(1, Math.floor(maxConnections / 2));
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: seconds(flags, 'http-keep-alive-timeout-s', CONNECTION_DEFAULTS.keepAliveTimeoutS),
    idleTimeoutMs: seconds(flags, 'http-idle-timeout-s', CONNECTION_DEFAULTS.idleTimeoutS),
    maxConnections,
    maxConnectionsPerAddress: Math.min(perAddress, maxConnections),
    wsHelloTimeoutMs: seconds(flags, 'ws-hello-timeout-s', CONNECTION_DEFAULTS.wsHelloTimeoutS),
    maxConnectionsSource: explicit === null ? 'fd-limit' : 'flag',
  };
}
