/** Errors of the bottomless format modules. */
import { LibsqlctlError } from '../../errors.js';

/**
 * A backup object that does not decode: wrong size, bad values, a compressed stream that is
 * truncated or damaged, a WAL frame whose checksum does not chain. `key` names the object.
 */
export class CorruptBackupError extends LibsqlctlError {
  constructor(
    readonly key: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super('BACKUP_CORRUPT', `backup object ${key} is corrupt: ${detail}`, options);
  }
}
