import { OutpostError } from '../../protocol/errors/index.js';
import type { Db } from '../db/open.js';
import type { Principal, TokenKind } from './tokens.js';
import { verifyToken } from './tokens.js';

/** Who may call a route: nobody needs a token (`none`), or a token of one of these kinds. */
export type Access = 'none' | 'any' | 'write' | 'admin';

const KINDS: Record<Exclude<Access, 'none'>, readonly TokenKind[]> = {
  any: ['admin', 'user', 'device'],
  write: ['admin', 'user'],
  admin: ['admin'],
};

/** Reads `Authorization: Bearer <token>`; 401 with distinct codes for a missing and a wrong token. */
export function authenticate(db: Db, authorization: string | undefined): Principal {
  if (!authorization)
    throw new OutpostError(
      'AUTH_TOKEN_MISSING',
      'this route needs a token: send "Authorization: Bearer <token>" (CLI: --token or OUTPOST_TOKEN)',
    );
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw new OutpostError('AUTH_TOKEN_MISSING', 'the Authorization header is not "Bearer <token>"');
  const p = verifyToken(db, m[1]);
  if (!p)
    throw new OutpostError(
      'AUTH_TOKEN_INVALID',
      'the token is not valid for this cloud (mistyped, revoked or from another cloud); ask the admin for a new one',
    );
  return p;
}

/** 403 unless the principal's kind may use a route with `access`. */
export function authorize(p: Principal, access: Exclude<Access, 'none'>): void {
  if (!KINDS[access].includes(p.kind)) {
    const need = KINDS[access].map((k) => (k === 'admin' ? 'an admin' : `a ${k}`)).join(' or ');
    const where = access === 'admin' ? " (the admin token is <data dir>/admin.token on the cloud's machine)" : '';
    throw new OutpostError('AUTH_FORBIDDEN', `a ${p.kind} token may not do this; use ${need} token${where}`, {
      kind: p.kind,
    });
  }
}

/** Users write only under their own name; the admin writes anywhere; devices never write. */
export function authorizeOwner(p: Principal, owner: string): void {
  authorize(p, 'write');
  if (p.kind === 'user' && p.subject !== owner) {
    throw new OutpostError(
      'AUTH_OWNER_FORBIDDEN',
      `user "${p.subject}" may not write under owner "${owner}"; use ids "${p.subject}/<name>" or that owner's token`,
      { user: p.subject, owner },
    );
  }
}

/**
 * Whether the principal may read an app (or another object without deployments) of `owner`.
 * Devices read none: what a device may see is decided by its desired state
 * (cloud-broker/catalog/access.ts), and an app's model list is not part of it.
 */
export function canRead(p: Principal, owner: string, isPublic: boolean): boolean {
  if (p.kind === 'device') return false;
  return p.kind === 'admin' || p.subject === owner || isPublic;
}
