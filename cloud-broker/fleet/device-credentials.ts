import { createHmac, randomBytes } from 'node:crypto';
import { hashToken, insertTokenHash } from '../auth/tokens.js';
import type { Db } from '../db/open.js';
import { CREDENTIAL_KEY, parseCredentialKey } from '../secrets/import.js';
import type { ClusterSecrets } from '../secrets/store.js';

/**
 * Device tokens that the cloud can compute again, for an external broker that keeps its own
 * password hashes (Mosquitto's dynamic-security plugin).
 *
 * The cloud stores only a token's sha256, which is right for checking one, but a broker restored
 * from an old backup, or a new broker, needs each device's password again, and dynsec's
 * createClient takes only a clear password. So with `--broker-admin dynsec` a device token is
 *
 *   "op_" + base64url(HMAC-SHA256(key, "outpost-device-token" NUL deviceId NUL generation))
 *
 * where `generation` counts the device tokens issued to that id before (so a re-provisioned
 * device never gets its revoked token back) and `key` is 32 random bytes kept in the database's
 * cluster_secrets as `broker/device-credentials.key` (the first replica makes it, the others read
 * it; an old `<data dir>/broker/device-credentials.key` is imported once), like the signing keys. The token looks exactly like a random one (same prefix, same length) and is
 * checked the same way (by its sha256). The key is as sensitive as the signing key: whoever holds
 * it can compute every device token.
 */
export function loadOrCreateCredentialKey(secrets: ClusterSecrets): Buffer {
  const { value } = secrets.ensure(CREDENTIAL_KEY, () => randomBytes(32).toString('base64') + '\n');
  return parseCredentialKey(value, `${CREDENTIAL_KEY} (database)`);
}

/** 16 hex of the token's sha256: names a token without revealing it (dynsec textdescription). */
export function tokenFingerprint(token: string): string {
  return hashToken(token).slice(0, 16);
}

export class DeviceCredentials {
  constructor(
    private readonly db: Db,
    private readonly key: Buffer,
  ) {}

  /** Issues the next token of `deviceId` and stores its hash; call inside the provision transaction. */
  issue(deviceId: string): string {
    const token = this.derive(deviceId, this.issuedCount(deviceId));
    insertTokenHash(this.db, hashToken(token), 'device', deviceId);
    return token;
  }

  /**
   * The device's live token, computed again; null when it was not issued by `issue` with this
   * key (provisioned before dynsec mode, or the key file was replaced).
   */
  recover(deviceId: string): string | null {
    const live = this.db
      .prepare(
        "SELECT hash FROM tokens WHERE kind = 'device' AND subject = ? AND revoked_at IS NULL ORDER BY created_at DESC",
      )
      .all(deviceId) as { hash: string }[];
    if (live.length === 0) return null;
    const n = this.issuedCount(deviceId);
    // The live token is the newest one; older generations are all revoked.
    const token = this.derive(deviceId, n - 1);
    return live.some((r) => r.hash === hashToken(token)) ? token : null;
  }

  private issuedCount(deviceId: string): number {
    const row = this.db
      .prepare("SELECT COUNT(*) AS n FROM tokens WHERE kind = 'device' AND subject = ?")
      .get(deviceId) as { n: number };
    return Number(row.n);
  }

  private derive(deviceId: string, generation: number): string {
    const mac = createHmac('sha256', this.key).update(`outpost-device-token\0${deviceId}\0${generation}`).digest();
    return `op_${mac.toString('base64url')}`;
  }
}
