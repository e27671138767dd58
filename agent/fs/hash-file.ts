import { lazyCrypto } from './lazy-crypto.js';
import { createReadStream } from 'node:fs';

/**
 * sha256 and size of a file, streamed in 1 MiB reads so memory stays flat for any size. Shared by
 * the store (verifying staged files) and the cloud CLI (publish, app install), as atomic-file.ts is.
 */
export async function hashFile(path: string, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number }> {
  const h = lazyCrypto().createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
    onBytes?.((chunk as Buffer).length);
  }
  return { sha256: h.digest('hex'), size };
}
