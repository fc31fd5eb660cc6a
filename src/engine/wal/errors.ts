/** Typed errors for replication-log and snapshot files. Codes are stable; `reason` says why. */
import { LibsqlctlError } from '../../errors.js';

export type WallogCorruptReason =
  | 'truncated_header'
  | 'bad_magic'
  | 'unsupported_version'
  | 'bad_page_size'
  | 'missing_frames'
  | 'frame_no_mismatch'
  | 'checksum_mismatch'
  | 'uncommitted_tail';

/** A `wallog` file that cannot be trusted; its frames are never served. */
export class WallogCorruptError extends LibsqlctlError {
  static readonly CODE = 'WALLOG_CORRUPT';
  readonly reason: WallogCorruptReason;
  readonly path: string;
  /** The first frame that failed verification, when the problem is in a frame. */
  readonly frameNo: bigint | undefined;

  constructor(path: string, reason: WallogCorruptReason, message: string, frameNo?: bigint) {
    super(WallogCorruptError.CODE, `wallog ${path}: ${message}`, {
      hint: 'the replication log is damaged; a new log has to be created from the database',
    });
    this.reason = reason;
    this.path = path;
    this.frameNo = frameNo;
  }
}

export type SnapshotCorruptReason =
  | 'truncated_header'
  | 'bad_range'
  | 'bad_size'
  | 'frame_order'
  | 'frame_out_of_range'
  | 'frame_size_after'
  | 'bad_page_no';

/** A snapshot file whose header or frames are inconsistent. */
export class SnapshotCorruptError extends LibsqlctlError {
  static readonly CODE = 'SNAPSHOT_CORRUPT';
  readonly reason: SnapshotCorruptReason;
  readonly path: string;

  constructor(path: string, reason: SnapshotCorruptReason, message: string) {
    super(SnapshotCorruptError.CODE, `snapshot ${path}: ${message}`);
    this.reason = reason;
    this.path = path;
  }
}
