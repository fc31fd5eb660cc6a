/** A SQLite value as the engine hands it around (integers are always bigint, reals are numbers). */
export type SqlValue = null | bigint | number | string | Uint8Array;

/** Column metadata of a result. */
export interface SqlColumn {
  name: string;
  decltype: string | null;
}

/** Outcome of one statement. */
export interface ExecResult {
  columns: SqlColumn[];
  rows: SqlValue[][];
  changes: number;
  lastInsertRowid: bigint | null;
  rowsRead: number;
  rowsWritten: number;
  durationMs: number;
}

/** Arguments of one statement: positional values and/or named values (names with or without prefix). */
export interface SqlArgs {
  positional: SqlValue[];
  named: Map<string, SqlValue>;
}

export const NO_ARGS: SqlArgs = { positional: [], named: new Map() };

/** Rough JSON size of a value, used for response limits (sqld estimates sizes the same way). */
export function estimateValueSize(v: SqlValue): number {
  if (v === null) return 16;
  if (typeof v === 'string') return v.length + 32;
  if (typeof v === 'number' || typeof v === 'bigint') return 40;
  return Math.ceil((v.byteLength * 4) / 3) + 32;
}
