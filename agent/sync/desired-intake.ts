import { toOutpostError } from '../../protocol/errors/index.js';
import { verifyDesired, type DesiredState } from '../../protocol/desired-state.js';
import type { SyncState } from './sync-state.js';
import type { TrustStore } from './trust-store.js';

/** Refusals that a newer root may cure: the walk runs, then the document is verified again. */
const CURABLE_BY_NEW_ROOT = new Set(['DESIRED_UNTRUSTED_KEY', 'TRUST_ROOT_EXPIRED']);

export interface DesiredIntakeOptions {
  deviceId: string;
  trust: TrustStore;
  state: SyncState;
  now?: () => Date;
  /** A document was refused (bad signature, replay, expired root...): report it. */
  refused: (code: string, message: string) => void;
  /** A root walk cured a refusal: hand the same payload in again. */
  resubmit: (payload: Buffer | string) => void;
  /** True once the agent stops: a walk that ends after it does nothing. */
  stopped: () => boolean;
}

/** A document that passed verification, with whether the revision floor was dropped for it. */
export interface Received {
  desired: DesiredState;
  floorRevoked: boolean;
}

/**
 * The door of the reconcile loop: every signed desired-state document passes here, so only
 * verified documents reach the planner. It verifies against the trusted root's online keys and
 * the persisted revision floor, drops that floor when a revoked key set it, and walks the root
 * chain once when a refusal is one a newer root may cure.
 */
export class DesiredIntake {
  /** Counts received documents, so that a walk that ends late re-verifies only the newest one. */
  private received = 0;

  constructor(private readonly opts: DesiredIntakeOptions) {}

  /** Verifies a received payload; null when it was refused (and reported). */
  receive(payload: Buffer | string): Received | null {
    const seq = ++this.received;
    const floorRevoked = this.floorRevoked();
    try {
      return { desired: this.verify(payload, floorRevoked ? null : this.opts.state.lastRevision()), floorRevoked };
    } catch (err) {
      const e = toOutpostError(err);
      this.opts.refused(e.code, e.message);
      // A document by a key the trusted root does not name may be by a new online key: walk the
      // root chain, then verify this document again (unless a newer one arrived meanwhile).
      if (CURABLE_BY_NEW_ROOT.has(e.code)) void this.retryAfterWalk(payload, seq);
      return null;
    }
  }

  /** Verifies the persisted document at start; no revision floor applies to it. */
  verifyStored(doc: string): DesiredState {
    return this.verify(doc, null);
  }

  private async retryAfterWalk(payload: Buffer | string, seq: number): Promise<void> {
    const advanced = await this.opts.trust.refresh();
    if (this.opts.stopped() || seq !== this.received) return;
    if (advanced) {
      this.received--;
      this.opts.resubmit(payload);
      return;
    }
    // The walk found nothing newer; a root it refused says more than "untrusted key".
    const why = this.opts.trust.lastError;
    if (why) this.opts.refused(why.code, why.message);
  }

  /**
   * Fast-forward recovery (TUF 5.3.11): when every key that signed the document holding the
   * revision floor is now revoked, that floor may be a forged revision 2^50 by a stolen key, and
   * keeping it would lock the device out of the cloud's genuine revisions for good. Documents by
   * the revoked key are refused anyway, so the floor restarts from the next genuine document.
   */
  private floorRevoked(): boolean {
    const doc = this.opts.state.lastDocument();
    if (doc === null) return false;
    let revoked: ReadonlySet<string>;
    try {
      revoked = this.opts.trust.online().revoked;
      const ids = (JSON.parse(doc) as { signatures?: { keyid?: unknown }[] }).signatures?.map((x) => x.keyid) ?? [];
      return ids.length > 0 && ids.every((id) => typeof id === 'string' && revoked.has(id));
    } catch {
      return false;
    }
  }

  private verify(payload: Buffer | string, lastRevision: number | null): DesiredState {
    const online = this.opts.trust.online();
    return verifyDesired(payload, {
      trustedKeys: online.keys,
      revoked: online.revoked,
      deviceId: this.opts.deviceId,
      now: this.opts.now?.() ?? new Date(),
      lastRevision,
    });
  }
}
