import type { Readable } from 'node:stream';
import { OutpostError } from '../../protocol/errors/index.js';

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface PutResult {
  sha256: string;
  size: number;
  /** false when the blob was already stored (the bytes were still checked). */
  created: boolean;
}

/**
 * Where the cloud keeps blobs: content-addressed by sha256, written once, never changed. Two
 * implementations: a folder (`dir-blob-store.ts`, the default; NFS for replicas) and an
 * S3-compatible bucket (`s3-blob-store.ts`, `--blob-store s3://...`). The HTTP routes
 * (upload, Range serving, publish checks) see only this interface.
 *
 * Invariants every implementation keeps:
 * - a blob is readable under its sha256 only once all its bytes arrived and hash to that name:
 *   a reader never sees a half-written or wrong blob, and a failed upload leaves none;
 * - memory stays flat for any blob size: bytes stream in and out, nothing is held whole.
 */
export interface BlobStore {
  /** `directory` or `s3`, for logs and /v1/health-style answers. */
  readonly kind: 'directory' | 's3';
  /** Where the blobs are, for logs: a folder, or s3://bucket/prefix (never credentials). */
  readonly location: string;
  /** Creates what it needs and checks that the store is usable; fails the cloud's start otherwise. */
  init(): Promise<void>;
  /** The stored size, or null when the blob is absent. */
  stat(sha256: string): Promise<{ size: number } | null>;
  /**
   * Streams exactly `size` bytes from `source` into the blob `sha256`, hashing them on the way;
   * a wrong hash (BLOB_HASH_MISMATCH), a short body (BLOB_UPLOAD_INCOMPLETE) or a long one
   * (BAD_REQUEST) stores nothing.
   */
  put(sha256: string, size: number, source: Readable): Promise<PutResult>;
  /**
   * Bytes `start..end` (inclusive) of a stored blob, streamed. Rejects with BLOB_NOT_FOUND when
   * it is absent; consumers must pipe it with backpressure (stream/promises pipeline).
   */
  read(sha256: string, start: number, end: number): Promise<Readable>;
  /** Bytes that may still be written, or null when the store has no such bound (a bucket). */
  freeBytes(): Promise<number | null>;
  /** Names of uploads being written now (temp files, open multipart uploads): tests check that failures leave none. */
  uploadsInFlight(): Promise<string[]>;
  close(): Promise<void>;
}

/** The one check of a blob name; every store calls it before building a path or a key from it. */
export function checkSha256(sha256: string): string {
  if (!SHA256_HEX.test(sha256))
    throw new OutpostError('BAD_REQUEST', `"${sha256}" is not a sha256 (64 lowercase hex characters)`, {
      key: 'sha256',
      value: sha256,
    });
  return sha256;
}

export function blobNotFound(sha256: string): OutpostError {
  return new OutpostError('BLOB_NOT_FOUND', `no blob ${sha256} is stored; upload it with PUT /v1/blobs/${sha256}`, {
    sha256,
  });
}
