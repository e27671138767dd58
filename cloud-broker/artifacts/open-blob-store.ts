import path from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import type { BlobStore } from './blob-store.js';
import { DirectoryBlobStore } from './dir-blob-store.js';
import type { S3BlobStoreOptions } from './s3-blob-store.js';

/** Which blob store a cloud runs on: a folder (the default) or an S3-compatible bucket. */
export type BlobStoreSpec =
  | { kind: 'directory'; root: string }
  | ({ kind: 's3' } & Omit<S3BlobStoreOptions, 'log' | 'maxSockets'>);

// S3's bucket rules (3 to 63 of lowercase letters, digits, dots, hyphens); s3rver, MinIO and
// Ceph accept the same.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX = /^[A-Za-z0-9!_.*'()/-]*$/;

function flagsError(message: string, details?: Record<string, unknown>): OutpostError {
  return new OutpostError('CLOUD_BLOB_STORE_FLAGS', message, details);
}

export interface S3Flags {
  /** `s3://BUCKET[/PREFIX]` */
  store: string;
  endpoint?: string;
  region?: string;
  /** `path` or `virtual`; default path with an endpoint (what MinIO, Ceph RGW and s3rver serve), virtual on AWS. */
  addressing?: string;
}

/** `--blob-store` and its `--s3-*` flags, checked once; nothing is contacted here. */
export function parseS3Flags(f: S3Flags): BlobStoreSpec & { kind: 's3' } {
  let u: URL;
  try {
    u = new URL(f.store);
  } catch {
    throw flagsError(
      `--blob-store "${f.store}" is not a URL; give s3://BUCKET[/PREFIX] (for a folder, use --blob-dir)`,
    );
  }
  if (u.protocol !== 's3:' || u.username || u.password || u.port || u.search || u.hash)
    throw flagsError(
      `--blob-store "${f.store}" must be s3://BUCKET[/PREFIX], with no credentials, port or query (credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for a folder, use --blob-dir)`,
    );
  // URL parsing folds "a/../b" into "b"; a prefix is taken as written or refused, never rewritten.
  if (/\/\.\.?(\/|$)/.test(f.store.slice('s3://'.length)))
    throw flagsError(`--blob-store "${f.store}" has a "." or ".." segment; give the key prefix as plain segments`);
  const bucket = u.hostname;
  if (!BUCKET.test(bucket))
    throw flagsError(`bucket "${bucket}" is not an S3 bucket name (3 to 63 lowercase letters, digits, dots, hyphens)`, {
      bucket,
    });
  const raw = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  if (!PREFIX.test(raw) || raw.split('/').some((s) => s === '..' || s === '.' || (s === '' && raw !== '')))
    throw flagsError(
      `key prefix "${raw}" of --blob-store must be plain path segments (letters, digits, - _ . ! * ' ( ))`,
      {
        prefix: raw,
      },
    );
  let endpoint: string | undefined;
  if (f.endpoint !== undefined) {
    let e: URL | null = null;
    try {
      e = new URL(f.endpoint);
    } catch {
      e = null;
    }
    if (
      !e ||
      (e.protocol !== 'http:' && e.protocol !== 'https:') ||
      e.username ||
      e.password ||
      e.search ||
      e.pathname.replace(/\/+$/, '') !== ''
    )
      throw flagsError(
        `--s3-endpoint "${f.endpoint}" must be an http(s)://HOST[:PORT] URL with no path, query or credentials`,
      );
    endpoint = `${e.protocol}//${e.host}`;
  }
  if (f.region !== undefined && !/^[a-z0-9-]{1,40}$/.test(f.region))
    throw flagsError(`--s3-region "${f.region}" is not a region name (e.g. eu-central-1)`);
  const addressing = f.addressing ?? (endpoint ? 'path' : 'virtual');
  if (addressing !== 'path' && addressing !== 'virtual')
    throw flagsError(`--s3-addressing "${f.addressing}" must be path or virtual`);
  return {
    kind: 's3',
    bucket,
    prefix: raw ? `${raw}/` : '',
    endpoint,
    region: f.region,
    forcePathStyle: addressing === 'path',
  };
}

/**
 * Builds the store of a spec. The AWS SDK is imported here, only when S3 is chosen, so a cloud
 * on a folder (the default) and every other `outpost` verb never load it.
 */
export async function openBlobStore(
  spec: BlobStoreSpec,
  o: { log?: Logger; maxSockets?: number } = {},
): Promise<BlobStore> {
  if (spec.kind === 'directory') return new DirectoryBlobStore(path.resolve(spec.root));
  const { S3BlobStore } = await import('./s3-blob-store.js');
  const { kind: _kind, ...options } = spec;
  return new S3BlobStore({ ...options, log: o.log, maxSockets: o.maxSockets });
}
