import { createRequire } from 'node:module';

type Crypto = typeof import('node:crypto');
let loaded: Crypto | undefined;

/**
 * node:crypto, loaded on first use instead of imported: it is about 20 of node's internal modules
 * (5-7 ms to compile on the bench machine), and a start-up that writes and hashes nothing (the
 * agent serving what is installed) never needs it (docs/runtime.md, "Start-up").
 */
export function lazyCrypto(): Crypto {
  loaded ??= createRequire(import.meta.url)('node:crypto') as Crypto;
  return loaded;
}

/** `bytes` random bytes in hex, for names that must not collide (temporary files, trash entries). */
export function randomHex(bytes: number): string {
  return lazyCrypto().randomBytes(bytes).toString('hex');
}
