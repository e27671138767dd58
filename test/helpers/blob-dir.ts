import { DirectoryBlobStore, type BlobStore } from '../../cloud-broker/artifacts/index.js';

/** The folder store of a test cloud started without S3, for tests that look at its files. */
export function blobDir(cloud: { blobs: BlobStore }): DirectoryBlobStore {
  if (!(cloud.blobs instanceof DirectoryBlobStore))
    throw new Error(`this test needs the folder blob store, the cloud runs on ${cloud.blobs.location}`);
  return cloud.blobs;
}
