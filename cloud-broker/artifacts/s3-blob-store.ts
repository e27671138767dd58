import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, silentLogger, type Logger } from '../../protocol/log.js';
import { blobNotFound, checkSha256, type BlobStore, type PutResult } from './blob-store.js';
import { isNotFound, s3Failure } from './s3-errors.js';
import { isClientCut, UploadMeter } from './upload-meter.js';

/** S3's floor for every part but the last. */
export const MIN_PART_SIZE = 5 * 1024 ** 2;
/** 64 GiB (the largest blob the API takes) in 4,096 parts, well under S3's 10,000. */
export const DEFAULT_PART_SIZE = 16 * 1024 ** 2;
/** Sizes of blobs seen, so a download costs one GetObject and not a HeadObject first. */
const SIZE_CACHE = 10_000;

export interface S3BlobStoreOptions {
  bucket: string;
  /** '' or a key prefix ending in '/'. */
  prefix: string;
  /** An S3-compatible server (MinIO, Ceph RGW ...); absent: AWS, from the region. */
  endpoint?: string;
  /** Absent: the SDK's chain (AWS_REGION, the profile), else us-east-1 with an endpoint. */
  region?: string;
  /** bucket in the path (http://host/bucket/key), which most non-AWS servers want. */
  forcePathStyle: boolean;
  /** Absent: the SDK's standard chain (AWS_ACCESS_KEY_ID/..., AWS_PROFILE, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  partSize?: number;
  /** Requests to S3 at once; each download being served holds one (default 2,048, the HTTP connection limit). */
  maxSockets?: number;
  log?: Logger;
}

/**
 * Blobs in an S3-compatible bucket, under `<prefix>sha256/<sha256>` (flat: S3 needs no fan-out,
 * and a CDN or a public bucket URL ending in `<prefix>sha256/` works as a device `blobBase`).
 *
 * An upload is never visible half-written, whatever its size: every non-empty blob goes up as a
 * multipart upload whose parts stream straight from the client (one part at a time, so memory is
 * bounded by stream buffers, not by the blob), and CompleteMultipartUpload, the one call that
 * makes the object exist, is sent only after the last byte arrived and the sha256 matched. Any
 * failure aborts the upload instead. A crashed replica's unfinished upload stays invisible; a
 * bucket lifecycle rule (AbortIncompleteMultipartUpload) frees its parts (docs/scale.md).
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly location: string;
  private readonly o: S3BlobStoreOptions;
  private readonly log: Logger;
  private readonly client: S3Client;
  /**
   * Part uploads get their own client without retries: their body is a one-pass stream, and a
   * retry after some of it was sent would send a short body. The upload fails and is aborted;
   * the uploader sends it again.
   */
  private readonly uploads: S3Client;
  private readonly partSize: number;
  private readonly sizes = new Map<string, number>();
  private readonly inFlight = new Set<string>();

  constructor(o: S3BlobStoreOptions) {
    this.o = o;
    this.location = `s3://${o.bucket}/${o.prefix}${o.endpoint ? ` at ${o.endpoint}` : ''}`;
    this.log = moduleLogger(o.log ?? silentLogger, 'blob-store', { store: 's3' });
    this.partSize = Math.max(MIN_PART_SIZE, o.partSize ?? DEFAULT_PART_SIZE);
    const maxSockets = o.maxSockets ?? 2_048;
    const config = {
      region: o.region ?? (o.endpoint ? 'us-east-1' : undefined),
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle,
      credentials: o.credentials,
      // Integrity is the sha256 checked here before a blob is committed and again by every
      // device; the SDK's newer default checksums would send stream bodies aws-chunked, which
      // S3-compatible servers support unevenly.
      requestChecksumCalculation: 'WHEN_REQUIRED' as const,
      responseChecksumValidation: 'WHEN_REQUIRED' as const,
      // The SDK's own logger otherwise falls back to console for some warnings. Its info lines
      // (every command, with inputs) are dropped; what fails is reported by this store, with a code.
      logger: {
        trace: () => undefined,
        debug: () => undefined,
        info: () => undefined,
        warn: (...a: unknown[]) => this.log.debug({ sdk: a.map(String).join(' ') }, 'aws-sdk warning'),
        error: (...a: unknown[]) => this.log.warn({ sdk: a.map(String).join(' ') }, 'aws-sdk error'),
      },
      requestHandler: {
        connectionTimeout: 5_000,
        // Idle time on a socket, also while a slow device holds a download back: as long as
        // the replica's own idle timeout, after which the device resumes with a Range anyway.
        requestTimeout: 120_000,
        httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
        httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      },
    };
    this.client = new S3Client({ ...config, maxAttempts: 3 });
    this.uploads = new S3Client({ ...config, maxAttempts: 1 });
  }

  private keyOf(sha256: string): string {
    return `${this.o.prefix}sha256/${checkSha256(sha256)}`;
  }

  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.o.bucket }));
    } catch (err) {
      if (isNotFound(err))
        throw new OutpostError(
          'BLOB_STORE_REFUSED',
          `the bucket "${this.o.bucket}" does not exist at ${this.o.endpoint ?? 'AWS'}; create it, or fix --blob-store`,
          { store: this.location, op: 'HeadBucket', s3Error: 'NoSuchBucket' },
        );
      throw s3Failure(err, `HeadBucket ${this.o.bucket}`, this.location);
    }
    this.log.info({ store: this.location, partSize: this.partSize }, 'blobs are in an S3 bucket');
  }

  async stat(sha256: string): Promise<{ size: number } | null> {
    const key = this.keyOf(sha256);
    const known = this.sizes.get(sha256);
    if (known !== undefined) return { size: known };
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: key }));
      const size = Number(r.ContentLength ?? 0);
      this.remember(sha256, size);
      return { size };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw s3Failure(err, `HeadObject ${key}`, this.location);
    }
  }

  async read(sha256: string, start: number, end: number): Promise<Readable> {
    const key = this.keyOf(sha256);
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.o.bucket, Key: key, Range: `bytes=${start}-${end}` }),
      );
      // In Node the SDK's Body is the response's IncomingMessage: piped with backpressure, the
      // bytes in flight per download are its buffer and the client socket's, not the blob.
      return r.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) {
        this.sizes.delete(sha256);
        throw blobNotFound(sha256);
      }
      throw s3Failure(err, `GetObject ${key}`, this.location);
    }
  }

  async put(sha256: string, size: number, source: Readable): Promise<PutResult> {
    const key = this.keyOf(sha256);
    const meter = new UploadMeter(sha256, size);
    const existing = await this.stat(sha256);
    try {
      if (existing?.size === size || size === 0) {
        // Stored already (or empty): the bytes are still checked, since a verified upload is
        // what lets the uploader reference the blob, but nothing is written twice.
        await pipeline(source, meter, new Writable({ write: (_c, _e, cb) => cb() }));
        meter.verify();
        if (existing?.size === size) return { sha256, size, created: false };
        await this.client.send(
          new PutObjectCommand({ Bucket: this.o.bucket, Key: key, Body: Buffer.alloc(0), ContentLength: 0 }),
        );
      } else {
        if (existing)
          this.log.warn({ sha256, stored: existing.size, size }, 'the stored object has the wrong size; replacing it');
        await this.multipart(key, size, source, meter);
      }
      this.remember(sha256, size);
      return { sha256, size, created: true };
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      // The client went away mid-body (not S3's doing): the same code as the folder store.
      if (meter.received < size && (source.destroyed || isClientCut(err))) throw meter.incomplete('was cut');
      throw s3Failure(err, `upload of ${key}`, this.location);
    }
  }

  private async multipart(key: string, size: number, source: Readable, meter: UploadMeter): Promise<void> {
    const { bucket } = this.o;
    let uploadId: string;
    try {
      const r = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }),
      );
      uploadId = r.UploadId ?? '';
    } catch (err) {
      throw s3Failure(err, `CreateMultipartUpload ${key}`, this.location);
    }
    const name = `${key}#${uploadId}`;
    this.inFlight.add(name);
    const parts: CompletedPart[] = [];
    let part: { pass: PassThrough; sending: Promise<void>; left: number; stop: AbortController } | null = null;
    let offset = 0;
    const startPart = (): NonNullable<typeof part> => {
      const n = parts.length + 1;
      const length = Math.min(this.partSize, size - offset);
      const pass = new PassThrough();
      // A body that stops short leaves the part's request waiting for bytes that never come:
      // the cleanup aborts it (a destroyed body does not end the request by itself).
      const stop = new AbortController();
      const sending = this.uploads
        .send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: n,
            Body: pass,
            ContentLength: length,
          }),
          { abortSignal: stop.signal },
        )
        .then((r) => {
          parts.push({ ETag: r.ETag, PartNumber: n });
        });
      // Observed by the writer (race below) or the cleanup; never an unhandled rejection.
      sending.catch(() => undefined);
      return { pass, sending, left: length, stop };
    };
    try {
      await pipeline(source, meter, async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) {
          let rest = chunk;
          while (rest.length > 0) {
            part ??= startPart();
            const piece = rest.subarray(0, part.left);
            rest = rest.subarray(piece.length);
            part.left -= piece.length;
            offset += piece.length;
            // Backpressure: the client's body is read only as fast as S3 takes the part.
            if (!part.pass.write(piece)) await Promise.race([once(part.pass, 'drain'), part.sending]);
            if (part.left === 0) {
              part.pass.end();
              await part.sending;
              part = null;
            }
          }
        }
      });
      // Every part is up, none is visible: the object appears only with Complete, after this.
      meter.verify();
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      const open = part as { pass: PassThrough; sending: Promise<void>; stop: AbortController } | null;
      open?.stop.abort();
      open?.pass.destroy();
      await open?.sending.catch(() => undefined);
      await this.abort(key, uploadId);
      throw err;
    } finally {
      this.inFlight.delete(name);
    }
  }

  private async abort(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.o.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      this.log.warn(
        { key, s3Error: e.name, httpStatus: e.$metadata?.httpStatusCode },
        'could not abort a failed multipart upload (it stays invisible); a bucket lifecycle rule AbortIncompleteMultipartUpload frees its parts',
      );
    }
  }

  private remember(sha256: string, size: number): void {
    if (this.sizes.size >= SIZE_CACHE) this.sizes.delete(this.sizes.keys().next().value!);
    this.sizes.set(sha256, size);
  }

  async freeBytes(): Promise<null> {
    return null;
  }

  async uploadsInFlight(): Promise<string[]> {
    return [...this.inFlight];
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.uploads.destroy();
  }
}
