import path from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseS3Flags, type BlobStoreSpec } from '../artifacts/index.js';
import { stringFlag, type FlagValues } from './args.js';

const S3_ONLY = ['s3-endpoint', 's3-region', 's3-addressing'];

/**
 * `--blob-dir DIR` or `--blob-store s3://BUCKET[/PREFIX]` with its `--s3-*` flags, checked for
 * fit before anything starts; undefined = the default folder in the data dir. Credentials are
 * not flags: the AWS SDK's standard chain reads them (environment, profile, instance role), so
 * they never appear in `ps` or in a unit file's command line.
 */
export function blobStoreFlags(values: FlagValues, cwd: string): BlobStoreSpec | undefined {
  const dir = stringFlag(values, 'blob-dir');
  const store = stringFlag(values, 'blob-store');
  if (dir !== undefined && store !== undefined)
    throw new OutpostError(
      'CLOUD_BLOB_STORE_FLAGS',
      '--blob-dir and --blob-store exclude each other: blobs live in one folder or one bucket',
      { given: ['--blob-dir', '--blob-store'] },
    );
  if (store === undefined) {
    const orphan = S3_ONLY.find((f) => stringFlag(values, f) !== undefined);
    if (orphan)
      throw new OutpostError('CLOUD_BLOB_STORE_FLAGS', `--${orphan} needs --blob-store s3://BUCKET[/PREFIX]`, {
        given: `--${orphan}`,
      });
    return dir === undefined ? undefined : { kind: 'directory', root: path.resolve(cwd, dir) };
  }
  return parseS3Flags({
    store,
    endpoint: stringFlag(values, 's3-endpoint'),
    region: stringFlag(values, 's3-region'),
    addressing: stringFlag(values, 's3-addressing'),
  });
}
