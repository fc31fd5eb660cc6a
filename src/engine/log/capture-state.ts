import fs from 'node:fs';
import path from 'node:path';

/**
 * `wallog-capture`: which log frame the current SQLite WAL generation starts at. Written (atomically)
 * only when a WAL generation begins or a new log is seeded, never per commit: WAL frame i of the
 * generation with these salts is log frame `genStartFrameNo + i`. Salts null = "the next WAL
 * generation, whatever its salts, starts at genStartFrameNo" (written when a new log is seeded).
 */
export interface CaptureState {
  logId: string;
  salt1: number | null;
  salt2: number | null;
  genStartFrameNo: bigint;
}

export const CAPTURE_STATE_FILE = 'wallog-capture';

export function readCaptureState(dir: string): CaptureState | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, CAPTURE_STATE_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const salt = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);
    if (typeof raw.logId !== 'string' || typeof raw.genStartFrameNo !== 'string' || !/^\d+$/.test(raw.genStartFrameNo)) return null;
    return { logId: raw.logId, salt1: salt(raw.salt1), salt2: salt(raw.salt2), genStartFrameNo: BigInt(raw.genStartFrameNo) };
  } catch {
    return null;
  }
}

/**
 * Replaces the state file atomically (write, rename). `durable` adds an fsync: needed only where a
 * power loss must not lose it (log creation); elsewhere a lost or stale state makes recovery start
 * a new log, which is safe.
 */
export function writeCaptureState(dir: string, state: CaptureState, durable = false): void {
  const file = path.join(dir, CAPTURE_STATE_FILE);
  const tmp = `${file}.tmp`;
  const text = JSON.stringify({ ...state, genStartFrameNo: state.genStartFrameNo.toString() });
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
