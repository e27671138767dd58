export { SHA256_HEX, checkSha256, type BlobStore, type PutResult } from './blob-store.js';
export { DirectoryBlobStore } from './dir-blob-store.js';
export { openBlobStore, parseS3Flags, type BlobStoreSpec } from './open-blob-store.js';
export { serveBlob } from './serve-blob.js';
export { decideRange, type RangeDecision } from './range.js';
