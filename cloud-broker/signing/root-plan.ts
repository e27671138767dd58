import type { Key } from '@tufjs/models';
import { OutpostError } from '../../protocol/errors/index.js';
import { buildRoot, ONLINE_ROLE, revokedOf, type RootMetadata } from '../../protocol/trust-root.js';

/**
 * The next root for each `outpost keys` verb, unsigned: pure functions from the current root to
 * version N+1 (the CLI signs them with the root keys it holds, the cloud checks them by TUF's rules
 * before serving them). Revocations are cumulative, so a key once revoked stays refused.
 */
export const DEFAULT_ROOT_DAYS = 365;

export function expiresIn(days: number, now = new Date()): string {
  return new Date(Math.floor(now.getTime() / 1000) * 1000 + days * 86_400_000).toISOString().replace('.000Z', 'Z');
}

function checkThreshold(threshold: number, n: number): void {
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > n)
    throw new OutpostError(
      'TRUST_THRESHOLD_INVALID',
      `threshold ${threshold} must be 1..${n} (the number of root keys)`,
      {
        threshold,
        keys: n,
      },
    );
}

const keysOf = (root: RootMetadata, role: string): Key[] =>
  root.signed.roles[role].keyIDs.map((id) => root.signed.keys[id]);

/** Root v2 of `keys init`: the new root keys over the legacy root v1, the legacy key staying online. */
export function planInit(o: { online: Key; rootKeys: Key[]; threshold: number; expires: string }): RootMetadata {
  checkThreshold(o.threshold, o.rootKeys.length);
  return buildRoot({
    version: 2,
    expires: o.expires,
    rootKeys: o.rootKeys,
    threshold: o.threshold,
    onlineKeys: [o.online],
  });
}

/** A new online key; the old one is retired into the revoked list (documents it signs are refused). */
export function planRotateOnline(current: RootMetadata, online: Key, expires: string): RootMetadata {
  const old = current.signed.roles[ONLINE_ROLE].keyIDs.filter((id) => id !== online.keyID);
  return buildRoot({
    version: current.signed.version + 1,
    expires,
    rootKeys: keysOf(current, 'root'),
    threshold: current.signed.roles.root.threshold,
    onlineKeys: [online],
    revoked: [...new Set([...revokedOf(current), ...old])],
  });
}

/** New root keys (threshold k of n); the online key stays. */
export function planRotateRoot(
  current: RootMetadata,
  rootKeys: Key[],
  threshold: number,
  expires: string,
): RootMetadata {
  checkThreshold(threshold, rootKeys.length);
  return buildRoot({
    version: current.signed.version + 1,
    expires,
    rootKeys,
    threshold,
    onlineKeys: keysOf(current, ONLINE_ROLE),
    revoked: [...revokedOf(current)],
  });
}

/** Drops one root key and revokes it; the threshold may be lowered with it. */
export function planRevokeRootKey(
  current: RootMetadata,
  keyid: string,
  expires: string,
  threshold = current.signed.roles.root.threshold,
): RootMetadata {
  const rest = keysOf(current, 'root').filter((k) => k.keyID !== keyid);
  checkThreshold(threshold, rest.length);
  return buildRoot({
    version: current.signed.version + 1,
    expires,
    rootKeys: rest,
    threshold,
    onlineKeys: keysOf(current, ONLINE_ROLE),
    revoked: [...new Set([...revokedOf(current), keyid])],
  });
}
