import { createHash, timingSafeEqual } from 'node:crypto';
import { isDeviceId } from '../../protocol/topics.js';
import { verifyToken } from '../auth/tokens.js';
import type { Authenticate } from '../broker/broker.js';
import type { Db } from '../db/open.js';

export interface ServiceCredentials {
  username: string;
  password: string;
}

const digest = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/**
 * The broker's authenticate for the embedded cloud: devices log in with username = device id and
 * password = their device token (stored hashed by cloud-broker/auth); the cloud's own publisher
 * logs in with a service credential. A removed device's tokens are revoked, so it fails here.
 */
export function brokerAuthenticator(db: Db, service: ServiceCredentials): Authenticate {
  const serviceDigest = digest(service.password);
  return async (username, password) => {
    if (username === service.username) {
      // Compare digests so the comparison is constant-time whatever the lengths.
      return timingSafeEqual(digest(password), serviceDigest) ? { kind: 'service', name: username } : null;
    }
    if (!isDeviceId(username)) return null;
    const p = verifyToken(db, password.toString('utf8'));
    if (p?.kind !== 'device' || p.subject !== username) return null;
    const row = db.prepare('SELECT 1 FROM devices WHERE id = ? AND removed_at IS NULL').get(username);
    return row ? { kind: 'device', deviceId: username } : null;
  };
}
