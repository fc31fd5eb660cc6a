/**
 * The messages of sqld's gRPC services as TypeScript sees them (proto/replication_log.proto,
 * proto/proxy.proto, proto/metadata.proto; spec sqld-wire.md §6). 64-bit integers are bigint, bytes
 * are Uint8Array, `optional` fields are absent (undefined) when not set, `oneof`s are tagged by the
 * one field that is present. src/rpc/proto.ts converts between these and the wire.
 */

// ---- metadata ----

export enum DurabilityMode {
  RELAXED = 0,
  STRONG = 1,
  EXTRA = 2,
  OFF = 3,
}

export interface DatabaseConfig {
  blockReads: boolean;
  blockWrites: boolean;
  blockReason?: string;
  maxDbPages: bigint;
  heartbeatUrl?: string;
  bottomlessDbId?: string;
  jwtKey?: string;
  txnTimeoutS?: bigint;
  allowAttach: boolean;
  maxRowSize?: bigint;
  sharedSchema?: boolean;
  sharedSchemaName?: string;
  durabilityMode?: DurabilityMode;
}

// ---- wal_log ----

export enum WalFlavor {
  Sqlite = 0,
  Libsql = 1,
}

export interface LogOffset {
  nextOffset: bigint;
  walFlavor?: WalFlavor;
}

export interface HelloRequest {
  handshakeVersion?: bigint;
}

export interface HelloResponse {
  generationId: string;
  generationStartIndex: bigint;
  logId: string;
  sessionToken: Uint8Array;
  currentReplicationIndex?: bigint;
  config?: DatabaseConfig;
}

export interface WireFrame {
  /** One 4120-byte frame (spec §6.8). */
  data: Uint8Array;
  timestamp?: bigint;
  durableFrameNo?: bigint;
}

export interface Frames {
  frames: WireFrame[];
}

// ---- proxy: shared and unary (deprecated) API ----

/** `proxy.Value.data`: a bincode-encoded SQL value (src/rpc/bincode.ts). */
export interface ProxyValue {
  data: Uint8Array;
}

export type QueryParams = { positional: { values: ProxyValue[] } } | { named: { names: string[]; values: ProxyValue[] } };

export interface Query {
  stmt: string;
  /** Required by sqld: a Query without parameters is an error. */
  params?: QueryParams;
  skipRows: boolean;
}

export enum ErrorCode {
  SQL_ERROR = 0,
  TX_BUSY = 1,
  TX_TIMEOUT = 2,
  INTERNAL = 3,
}

export interface ProxyError {
  code: ErrorCode;
  message: string;
  extendedCode: number;
}

export interface Column {
  name: string;
  decltype?: string;
}

export interface Row {
  values: ProxyValue[];
}

export interface ResultRows {
  columnDescriptions: Column[];
  rows: Row[];
  affectedRowCount: bigint;
  lastInsertRowid?: bigint;
}

export type QueryResult = { error: ProxyError } | { row: ResultRows };

export type Cond =
  | { ok: { step: bigint } }
  | { err: { step: bigint } }
  | { not: { cond?: Cond } }
  | { and: { conds: Cond[] } }
  | { or: { conds: Cond[] } }
  | { isAutocommit: Record<string, never> };

export interface Step {
  cond?: Cond;
  query?: Query;
}

export interface Program {
  steps: Step[];
}

export interface ProgramReq {
  clientId: string;
  pgm?: Program;
}

export enum State {
  INIT = 0,
  INVALID = 1,
  TXN = 2,
}

export interface ExecuteResults {
  results: QueryResult[];
  state: State;
  currentFrameNo?: bigint;
}

export interface DescribeRequest {
  clientId: string;
  stmt: string;
}

export interface Description {
  columnDescriptions: Column[];
  paramNames: string[];
  paramCount: bigint;
}

export type DescribeResult = { error: ProxyError } | { description: Description };

export interface DisconnectMessage {
  clientId: string;
}

// ---- proxy: streaming API (StreamExec) ----

export type ExecRequestBody = { execute: { pgm?: Program } } | { describe: { stmt: string } };

export interface ExecReq {
  requestId: number;
  /** Absent in a malformed request ("invalid request"). */
  request?: ExecRequestBody;
}

export type RowValue = { text: string } | { integer: bigint } | { real: number } | { blob: Uint8Array } | { null: boolean };

export type RespStep =
  | { init: Record<string, never> }
  | { beginStep: Record<string, never> }
  | { finishStep: { affectedRowCount: bigint; lastInsertRowid?: bigint } }
  | { stepError: { error?: ProxyError } }
  | { colsDescription: { columns: Column[] } }
  | { beginRows: Record<string, never> }
  | { beginRow: Record<string, never> }
  | { addRowValue: { val?: RowValue } }
  | { finishRow: Record<string, never> }
  | { finishRows: Record<string, never> }
  | { finish: { lastFrameNo?: bigint; isAutocommit: boolean } };

export interface DescribeParam {
  name?: string;
}

export interface DescribeCol {
  name: string;
  decltype?: string;
}

export interface DescribeResp {
  params: DescribeParam[];
  cols: DescribeCol[];
  isExplain: boolean;
  isReadonly: boolean;
}

export type ExecResponseBody = { programResp: { steps: RespStep[] } } | { describeResp: DescribeResp } | { error: ProxyError };

export interface ExecResp {
  requestId: number;
  response?: ExecResponseBody;
}
