import { OutpostError } from '../../protocol/errors/index.js';
import { requestOnce } from './http.js';

/**
 * One GET of a small document (root metadata), read whole into memory under a hard byte cap:
 * a declared Content-Length over the cap is refused before any byte is read, and a body that
 * grows past it is cut. 404 answers null (the end of a chain); any other non-200 status, or a
 * network failure, is TRUST_FETCH_FAILED (retryable).
 */
export async function getSmall(
  url: string,
  headers: Record<string, string>,
  opts: { maxBytes: number; timeoutMs: number; tooLarge: (size: number) => OutpostError },
): Promise<Buffer | null> {
  let res: Awaited<ReturnType<typeof requestOnce>>;
  try {
    res = await requestOnce(url, headers, { idleTimeoutMs: opts.timeoutMs });
  } catch (err) {
    throw new OutpostError('TRUST_FETCH_FAILED', `GET ${url}: ${(err as Error).message}`, { url });
  }
  if (res.status === 404) {
    res.close();
    return null;
  }
  if (res.status !== 200) {
    res.close();
    throw new OutpostError('TRUST_FETCH_FAILED', `GET ${url} answered HTTP ${res.status}`, { url, status: res.status });
  }
  const declared = Number(res.headers['content-length'] ?? NaN);
  if (declared > opts.maxBytes) {
    res.close();
    throw opts.tooLarge(declared);
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    res.body.start({
      data(c) {
        if (done) return;
        size += c.length;
        if (size > opts.maxBytes) {
          done = true;
          res.close();
          reject(opts.tooLarge(size));
          return;
        }
        chunks.push(c);
      },
      end() {
        if (done) return;
        done = true;
        resolve(Buffer.concat(chunks));
      },
      error(err) {
        if (done) return;
        done = true;
        reject(new OutpostError('TRUST_FETCH_FAILED', `GET ${url}: ${(err as Error).message}`, { url }));
      },
    });
  });
}
