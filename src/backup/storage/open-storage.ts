/**
 * From a storage configuration to a backend. The S3 backend (and with it the AWS SDK, a few hundred
 * milliseconds to load) is imported only when it is used.
 */
import { LocalStorage } from './local-storage.js';
import type { StorageConfig } from './endpoint.js';
import type { BackupStorage } from './storage.js';

export { parseEndpoint, type ParsedEndpoint, type StorageConfig } from './endpoint.js';

/** The backend for a configuration; close() it when done. */
export async function openStorage(config: StorageConfig): Promise<BackupStorage> {
  if (config.kind === 'local') return new LocalStorage({ dir: config.dir, bucket: config.bucket });
  const { S3Storage } = await import('./s3-storage.js');
  const { kind: _kind, ...options } = config;
  return new S3Storage(options);
}
