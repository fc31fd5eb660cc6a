/** Frame capture from SQLite's WAL, sqld's replication log, snapshots and replay. */
export { crc64Chain, crc64GoIso, reverseBits64 } from './crc64.js';
export { SnapshotCorruptError, WallogCorruptError } from './errors.js';
export type { SnapshotCorruptReason, WallogCorruptReason } from './errors.js';
export { decodeFrame, encodeFrame, FRAME_HEADER_SIZE, FRAME_SIZE, PAGE_SIZE } from './frame.js';
export type { Frame, PageFrame } from './frame.js';
export { isUuid, newLogId, readLogId, u128ToUuid, uuidToU128, writeLogId } from './log-id.js';
export { replayIntoFile, replayTransactions } from './replay.js';
export type { ReplayFrame, ReplayOptions, ReplayResult } from './replay.js';
export * from './snapshot-file.js';
export * from './sqlite-wal.js';
export { WallogFile } from './wallog-file.js';
export type { WallogCreateOptions, WallogOpenOptions } from './wallog-file.js';
export { DEFAULT_SQLD_VERSION, WALLOG_HEADER_SIZE, WALLOG_MAGIC, WALLOG_VERSION } from './wallog-header.js';
export type { SqldVersion, WallogHeader } from './wallog-header.js';
