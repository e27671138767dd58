/**
 * Downloads on the device: `downloadVerified` (one resumable, verified file) and the blob pool
 * (several at once into a content-addressed cache, with a free-disk check and reuse of blobs the
 * device already has).
 */
export { downloadVerified, type DownloadRequest, type DownloadResult } from './download.js';
export {
  BlobPool,
  type BlobPoolOptions,
  type BlobRef,
  type BlobSource,
  type EnsureOptions,
  type EnsureResult,
} from './pool.js';
export { isNoSpace, linkOrCopy } from './fs-util.js';
