import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/open.js';
import type { TokenKind } from '../client/types.js';

export type { TokenKind };

/** Who a valid token speaks for. `subject` is the user name, the device id, or `admin`. */
export interface Principal {
  kind: TokenKind;
  subject: string;
}

export const TOKEN_KINDS: readonly TokenKind[] = ['admin', 'user', 'device'];

// A prefix makes leaked tokens easy to find with secret scanners; 32 random bytes make them unguessable.
const TOKEN_PREFIX = 'op_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Creates a token of `kind` for `subject` and returns it; only its sha256 is stored, so this is
 * the one moment the token exists in clear. Exported for the fleet code (device tokens).
 */
export function createToken(db: Db, kind: TokenKind, subject: string): string {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  insertTokenHash(db, hashToken(token), kind, subject);
  return token;
}

export function insertTokenHash(db: Db, hash: string, kind: TokenKind, subject: string): void {
  db.prepare('INSERT INTO tokens (hash, kind, subject, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(
    hash,
    kind,
    subject,
    new Date().toISOString(),
  );
}

/** The principal of a token, or null when it is unknown or revoked. */
export function verifyToken(db: Db, token: string): Principal | null {
  if (token.length === 0 || token.length > 512) return null;
  const hash = hashToken(token);
  // The lookup is by hash, so its timing can only reveal hashes of guesses, never the stored
  // token; the final compare is constant-time anyway so no code path compares secrets naively.
  const row = db.prepare('SELECT hash, kind, subject FROM tokens WHERE hash = ? AND revoked_at IS NULL').get(hash) as
    | { hash: string; kind: TokenKind; subject: string }
    | undefined;
  if (!row || !timingSafeEqual(Buffer.from(row.hash, 'hex'), Buffer.from(hash, 'hex'))) return null;
  return { kind: row.kind, subject: row.subject };
}

/** Revokes every token of `kind` for `subject` (e.g. a device being re-provisioned); returns how many. */
export function revokeTokens(db: Db, kind: TokenKind, subject: string): number {
  return db
    .prepare('UPDATE tokens SET revoked_at = ? WHERE kind = ? AND subject = ? AND revoked_at IS NULL')
    .run(new Date().toISOString(), kind, subject).changes;
}
