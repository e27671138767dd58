export { BlobStore, SHA256_HEX, type PutResult } from './blob-store.js';
export { serveBlob } from './serve-blob.js';
export { decideRange, type RangeDecision } from './range.js';
