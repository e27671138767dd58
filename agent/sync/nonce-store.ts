import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { writeFileAtomicSync } from '../fs/atomic-file.js';

/**
 * The nonces of the signed commands this device ran, each kept until its command expires: a
 * captured command published again (within its lifetime) is refused with COMMAND_REPLAYED, and
 * after its lifetime it is refused as expired, so nothing older needs remembering. The file is
 * written (atomically, fsynced) BEFORE the command runs, so a crash or a kill -9 right after
 * running cannot forget it. Bounded: at most `max` unexpired nonces; a flood beyond that is refused
 * (COMMAND_NONCE_STORE_FULL) rather than evicting entries, since eviction would reopen replay.
 */
export class NonceStore {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly path: string,
    private readonly max = 4096,
  ) {
    try {
      const v = JSON.parse(readFileSync(path, 'utf8')) as { nonces?: unknown };
      if (v.nonces && typeof v.nonces === 'object') {
        for (const [n, exp] of Object.entries(v.nonces as Record<string, unknown>)) {
          if (/^[0-9a-f]{32}$/.test(n) && typeof exp === 'number') this.seen.set(n, exp);
        }
      }
    } catch {
      // Missing: a new device. Unreadable: replaced on the next save; the commands it held have
      // at most COMMAND_MAX_LIFETIME_S left, which bounds what a corrupt file can let through.
    }
  }

  get size(): number {
    return this.seen.size;
  }

  /** Records a nonce valid until `expiresMs`; throws COMMAND_REPLAYED if it was seen. */
  claim(nonce: string, expiresMs: number, nowMs: number): void {
    for (const [n, exp] of this.seen) if (exp <= nowMs) this.seen.delete(n);
    if (this.seen.has(nonce))
      throw new OutpostError('COMMAND_REPLAYED', `command nonce ${nonce.slice(0, 12)}… was already used; ignored`, {
        nonce,
      });
    if (this.seen.size >= this.max)
      throw new OutpostError(
        'COMMAND_NONCE_STORE_FULL',
        `${this.seen.size} unexpired command nonces are remembered (the bound); retry after some expire`,
      );
    this.seen.set(nonce, expiresMs);
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomicSync(this.path, JSON.stringify({ nonces: Object.fromEntries(this.seen) }), { mode: 0o600 });
  }
}
