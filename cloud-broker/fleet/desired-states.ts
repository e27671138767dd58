import { parseDesiredSigned, type DesiredModel, type DesiredSigned } from '../../protocol/desired-state.js';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import type { Db } from '../db/open.js';
import type { Signer } from '../signing/sign.js';
import { desiredModelOf } from './catalog-read.js';
import type { ChangeFeed } from './changes.js';
import { buildSigned, effectiveDeployments, modelsDigest } from './desired.js';
import type { Publisher } from './publisher.js';
import type { RolloutStore } from './rollout-store.js';
import type { FleetStore } from './store.js';
import type { Deployment, DeviceRecord } from './types.js';

/** Signs and stores the new desired state of these devices inside the caller's transaction. */
export type SignFn = (
  ids?: readonly string[],
  /** `resign`: a new revision even when nothing changed (the online key was rotated). */
  opts?: { resign?: boolean },
) => { changed: string[]; revisions: Map<string, number> };

export interface DesiredContext {
  live: Deployment[];
  scopes: Map<number, Set<string>>;
  cache: Map<string, Omit<DesiredModel, 'blobBase'> | null>;
}

export interface DesiredStatesOptions {
  db: Db;
  store: FleetStore;
  rollouts: RolloutStore;
  signer: Signer;
  changes: ChangeFeed;
  log: Logger;
  /** How long a signed document stays valid, in seconds; re-signed at half-life. */
  lifetimeSeconds: number;
  /** Signed into each model entry. */
  blobBase: string;
}

/**
 * One signed desired-state document per device: computing it from the deployments and the
 * catalog, signing and storing it inside the caller's transaction, and publishing it (retained)
 * after the commit.
 *
 * Invariants: a device's revision only grows (DB trigger); a document is stored before it is
 * published, so a crash between the two is healed by the republication at the next connect;
 * every document is checked with parseDesiredSigned before it is signed; passes run one at a
 * time (see transact).
 */
export class DesiredStates {
  private publisher: Publisher | null = null;
  private blobBase: string;
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: DesiredStatesOptions) {
    this.blobBase = o.blobBase;
  }

  /** The attached MQTT publisher (null before attach). */
  get mqtt(): Publisher | null {
    return this.publisher;
  }

  attach(publisher: Publisher): void {
    this.publisher = publisher;
  }

  useBlobMirror(base: string): void {
    const u = new URL(base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new OutpostError('BAD_REQUEST', `blob mirror ${base} must be an http(s) URL`);
    this.blobBase = base.endsWith('/') ? base : `${base}/`;
  }

  /** Re-signs documents at half-life so that a running cloud never lets a device's state expire. */
  startRefresh(everyMs: number): void {
    this.timer ??= setInterval(
      () => void this.reconcile().catch((err) => this.o.log.error({ err }, 'refresh failed')),
      everyMs,
    );
    this.timer.unref();
  }

  stopRefresh(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The models a device should hold now, from the live deployments and the catalog. */
  desiredModels(device: { id: string; tags: readonly string[] }, ctx: DesiredContext = this.context()): DesiredModel[] {
    const eff = effectiveDeployments(ctx.live, device, ctx.scopes);
    const models: DesiredModel[] = [];
    for (const d of [...eff.values()].sort((a, b) => a.model.localeCompare(b.model))) {
      const key = `${d.model}@${d.version}`;
      let m = ctx.cache.get(key);
      if (m === undefined) ctx.cache.set(key, (m = desiredModelOf(this.o.db, d.model, d.version)));
      if (m) models.push({ ...m, blobBase: this.blobBase });
    }
    return models;
  }

  /** The deployments and rollout scopes every device's desired state is computed from (read once per pass). */
  context(extra: readonly Deployment[] = []): DesiredContext {
    return { live: [...this.o.store.liveDeployments(), ...extra], scopes: this.o.rollouts.scopes(), cache: new Map() };
  }

  /**
   * Brings each device's signed document up to date: a new revision when its model list (or the
   * blob base) changed, or when the document passed half of its lifetime. Returns the devices
   * that got a new revision.
   */
  reconcile(ids?: readonly string[]): Promise<string[]> {
    return this.transact((sign) => sign(ids).changed);
  }

  /** Every device's document again with a new revision (after the online key changed). */
  resignAll(): Promise<string[]> {
    return this.transact((sign) => sign(undefined, { resign: true }).changed);
  }

  /**
   * Runs `work` in one database transaction together with the signing of the desired states it
   * asks for (`sign(ids)`, every device when omitted), then publishes what was signed. A change
   * and the revisions it causes commit together or not at all (a rollout's "sent" mark and the
   * devices' new documents, a deployment and its audit entry); a crash before the publish is
   * healed by the republication at the next connect.
   *
   * One at a time: two overlapping passes could publish revisions out of order, and the broker
   * would then retain the older one, which the device refuses as a rollback.
   */
  transact<T>(work: (sign: SignFn) => T): Promise<T> {
    return this.serial(() => this.transactNow(work));
  }

  /** Publishes every device's latest signed document again (at start and after reconnects). */
  republishAll(): Promise<number> {
    return this.serial(async () => {
      const docs = this.o.store.allDesiredDocs();
      await Promise.all(docs.map((d) => this.publish(d.id, d.doc)));
      return docs.length;
    });
  }

  signedOf(id: string): DesiredSigned | null {
    const doc = this.o.store.desiredOf(id)?.doc;
    return doc ? (JSON.parse(doc) as { signed: DesiredSigned }).signed : null;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async transactNow<T>(work: (sign: SignFn) => T): Promise<T> {
    const { db, store, signer, lifetimeSeconds } = this.o;
    const docs = new Map<string, string>();
    const now = new Date();
    const sign: SignFn = (ids, opts = {}) => {
      const devices = ids
        ? ids.map((id) => store.getDevice(id)).filter((d): d is DeviceRecord => d !== null && d.removedAt === null)
        : store.listDevices();
      const ctx = this.context();
      const changed: string[] = [];
      const revisions = new Map<string, number>();
      // The whole fleet (a deploy to all, a republication) reads and writes in bulk: a statement
      // per device is a round trip per device on PostgreSQL, all in one transaction.
      const current = devices.length > 1 ? store.desiredOfAll() : null;
      const writes: Parameters<FleetStore['saveDesiredMany']>[0] = [];
      for (const d of devices) {
        const models = this.desiredModels(d, ctx);
        const digest = modelsDigest(models);
        const cur = current ? current.get(d.id) : store.desiredOf(d.id);
        const halfLife = cur?.expires ? Date.parse(cur.expires) - (lifetimeSeconds * 1000) / 2 : 0;
        const stale = now.getTime() >= halfLife;
        if (cur?.digest === digest && !stale && !opts.resign) {
          revisions.set(d.id, cur.revision);
          continue;
        }
        const revision = (cur?.revision ?? 0) + 1;
        const signed = parseDesiredSigned(buildSigned(d.id, revision, models, now, lifetimeSeconds));
        const json = JSON.stringify(signer.sign(signed));
        writes.push({ id: d.id, revision, doc: json, digest, expires: signed.expires });
        docs.set(d.id, json);
        changed.push(d.id);
        revisions.set(d.id, revision);
      }
      store.saveDesiredMany(writes);
      return { changed, revisions };
    };
    const result = db.transaction(() => work(sign))();
    await Promise.all([...docs].map(([id, doc]) => this.publish(id, doc)));
    for (const id of docs.keys()) this.o.changes.emit({ kind: 'desired', device: id, at: now.toISOString() });
    if (docs.size > 0) this.o.log.info({ devices: docs.size }, 'signed and published desired states');
    return result;
  }

  private async publish(id: string, doc: string): Promise<void> {
    if (!this.publisher) return;
    try {
      await this.publisher.publishDesired(id, doc);
    } catch (err) {
      // The document is in the database; the next connect republishes it.
      this.o.log.warn({ err, device: id }, 'publish failed; will republish on reconnect');
    }
  }
}
