import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { OutpostError } from '../../protocol/errors/index.js';

/**
 * The byte counter and hasher every blob upload streams through, whatever the store: it fails
 * the stream as soon as more than the declared size arrives (so an endless body is cut, not
 * stored), and `verify()` at the end turns a short body or a wrong hash into the catalog's codes.
 */
export class UploadMeter extends Transform {
  received = 0;
  private readonly hash = createHash('sha256');

  constructor(
    private readonly sha256: string,
    private readonly size: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.received += chunk.length;
    if (this.received > this.size) {
      cb(
        new OutpostError(
          'BAD_REQUEST',
          `the upload is longer than its declared size ${this.size}; send Content-Length equal to the file size`,
          { size: this.size },
        ),
      );
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  /** Call once the source ended: throws unless exactly `size` bytes hashing to `sha256` came. */
  verify(): void {
    if (this.received !== this.size) throw this.incomplete('ended');
    const actual = this.hash.digest('hex');
    if (actual !== this.sha256) {
      throw new OutpostError(
        'BLOB_HASH_MISMATCH',
        `the uploaded bytes hash to ${actual}, not ${this.sha256}; nothing was stored, re-hash the file and upload again`,
        { expected: this.sha256, actual },
      );
    }
  }

  incomplete(how: 'ended' | 'was cut'): OutpostError {
    return new OutpostError(
      'BLOB_UPLOAD_INCOMPLETE',
      `the upload of ${this.sha256} ${how} after ${this.received} of ${this.size} bytes; nothing was stored, upload it again`,
      { sha256: this.sha256, received: this.received, size: this.size },
    );
  }
}

/** Whether an error is the uploading client going away mid-body (not a fault of the store). */
export function isClientCut(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'ERR_STREAM_PREMATURE_CLOSE' || e?.code === 'ECONNRESET' || e?.message === 'aborted';
}
