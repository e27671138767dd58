import { randomBytes } from 'node:crypto';
import { buildCommand } from '../../protocol/command.js';
import { COMMANDS, type CommandName } from '../../protocol/topics.js';
import type { AgentConfigDraft } from './provision.js';
import { parseDesiredSigned, type DesiredModel, type DesiredSigned } from '../../protocol/desired-state.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId, parseModelRef } from '../../protocol/ids.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { parseReported, type ReportedState } from '../../protocol/reported-state.js';
import { parseDeviceId, parseDeviceTopic, STATUS_OFFLINE, STATUS_ONLINE } from '../../protocol/topics.js';
import { createToken, revokeTokens } from '../auth/tokens.js';
import type { Db } from '../db/open.js';
import type { Signer } from '../signing/sign.js';
import { appModels, desiredModelOf, latestVersion, versionExists } from './catalog-read.js';
import { ChangeFeed } from './changes.js';
import { buildSigned, effectiveDeployments, modelsDigest, planRollback } from './desired.js';
import type { Publisher } from './publisher.js';
import { rolloutOf, type RolloutDevice } from './rollout.js';
import { AuditStore, SYSTEM_ACTOR, type Actor } from './audit-store.js';
import { RolloutStore } from './rollout-store.js';
import { FleetStore } from './store.js';
import { TelemetryStore, type LatestTelemetry } from './telemetry.js';
import { describeTarget, parseTag, type Deployment, type DeviceRecord, type Target } from './types.js';

export interface FleetOptions {
  db: Db;
  /** The online key (cloud-broker/signing/trust.ts follows rotations behind this one object). */
  signer: Signer;
  /** The newest root for agent.json's trustedRoot (undefined before `outpost keys init`). */
  provisionRoot?: () => Record<string, unknown> | undefined;
  log: Logger;
  /** Written into agent.json by provision (`ca` only when the broker uses a private CA). */
  urls: AgentConfigDraft['cloud'];
  /** Signed into each model entry; default: `${urls.http}/v1/blobs/`. */
  blobBase?: string;
  /** How long a signed document stays valid (default 7 days); re-signed at half-life. */
  lifetimeSeconds?: number;
  /**
   * Called when a device is removed, to drop its live connections (the embedded broker) or delete
   * its broker client (dynsec). Awaited; a failure is logged, and the next reconciliation of an
   * external broker removes what is left.
   */
  onRevoke?: (deviceId: string) => void | Promise<void>;
  /** Mints a device token and stores its hash (default: createToken, random). In the transaction. */
  issueDeviceToken?: (deviceId: string) => string;
  /**
   * Called after a device was stored, with its token in clear (the one moment it exists): an
   * external broker creates the device's login here. When it throws, the provision is undone
   * (`remove`) and the error is the caller's, so running provision again works.
   */
  onProvisioned?: (deviceId: string, token: string) => Promise<void>;
}

export type DeploySpec = { model: string } | { app: string };

export interface CommandSent {
  device: string;
  command: CommandName;
  args: Record<string, string>;
  nonce: string;
  expires: string;
  keyid: string;
}

/** One model version of a deployment, resolved against the catalog. */
export interface DeployItem {
  model: string;
  version: number;
  app: string | null;
}

/** Signs and stores the new desired state of these devices inside the caller's transaction. */
export type SignFn = (
  ids?: readonly string[],
  /** `resign`: a new revision even when nothing changed (the online key was rotated). */
  opts?: { resign?: boolean },
) => { changed: string[]; revisions: Map<string, number> };

export interface DeployResult {
  target: Target;
  deployments: Deployment[];
  /** Devices whose desired state changed and got a new revision. */
  devices: string[];
}

const DAY = 24 * 3600;

export interface DesiredContext {
  live: Deployment[];
  scopes: Map<number, Set<string>>;
  cache: Map<string, Omit<DesiredModel, 'blobBase'> | null>;
}

/**
 * The fleet: devices, tags, deployments, and one signed desired-state document per device.
 *
 * Invariants: a device's revision only grows (DB trigger); a document is stored before it is
 * published, so a crash between the two is healed by the republication at the next connect;
 * every document is checked with parseDesiredSigned before it is signed.
 */
export class Fleet {
  readonly store: FleetStore;
  readonly telemetry: TelemetryStore;
  /** Every change as it happens, for live views (cloud-broker/fleet/changes.ts). */
  readonly changes: ChangeFeed;
  readonly audit: AuditStore;
  readonly rollouts: RolloutStore;
  private publisher: Publisher | null = null;
  private readonly log: Logger;
  private readonly lifetime: number;
  private blobBase: string;
  private timer: NodeJS.Timeout | null = null;
  /** Called after a report or telemetry sample was taken in (the rollout scheduler listens). */
  onDeviceEvent: (deviceId: string) => void = () => undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** The last answer of each device to each command (device -> command -> answer); in memory, bounded by devices x commands. */
  private readonly answers = new Map<string, Map<string, Record<string, unknown>>>();

  constructor(private readonly opts: FleetOptions) {
    this.store = new FleetStore(opts.db);
    this.audit = new AuditStore(opts.db);
    this.rollouts = new RolloutStore(opts.db);
    this.log = moduleLogger(opts.log, 'fleet');
    this.telemetry = new TelemetryStore(opts.db, this.log.child({ part: 'telemetry' }));
    this.changes = new ChangeFeed(this.log);
    this.lifetime = opts.lifetimeSeconds ?? 7 * DAY;
    this.blobBase = opts.blobBase ?? `${opts.urls.http.replace(/\/$/, '')}/v1/blobs/`;
  }

  /**
   * Points devices at a blob mirror (a CDN, a caching proxy) from the next signed revision on.
   * Safe without trusting the mirror: devices verify every blob against the signed hash and size.
   */
  useBlobMirror(base: string): void {
    const u = new URL(base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new OutpostError('BAD_REQUEST', `blob mirror ${base} must be an http(s) URL`);
    this.blobBase = base.endsWith('/') ? base : `${base}/`;
  }

  /** Attaches the MQTT publisher; call republishAll from its onConnect. */
  attach(publisher: Publisher): void {
    this.publisher = publisher;
  }

  /** Re-signs documents at half-life so that a running cloud never lets a device's state expire. */
  startRefresh(everyMs = 3600_000): void {
    this.timer ??= setInterval(
      () => void this.reconcile().catch((err) => this.log.error({ err }, 'refresh failed')),
      everyMs,
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.store.flushReports();
  }

  // ---- devices ---------------------------------------------------------------------------

  async provision(
    idIn: string,
    tagsIn: readonly string[] = [],
    actor: Actor = SYSTEM_ACTOR,
  ): Promise<{ device: DeviceRecord; agentConfig: AgentConfigDraft }> {
    const id = parseDeviceId(idIn);
    const tags = [...new Set(tagsIn.map((t, i) => parseTag(t, `tags[${i}]`)))];
    const token = this.opts.db.transaction(() => {
      const existing = this.store.getDevice(id);
      if (existing && existing.removedAt === null) {
        throw new OutpostError(
          'DEVICE_EXISTS',
          `device ${id} is already provisioned; run \`outpost device remove ${id}\` first to issue new credentials`,
          { device: id },
        );
      }
      this.store.upsertDevice(id, tags);
      this.audit.append(actor, 'device.provision', { devices: [id], details: { tags, token: 'created' } });
      return this.opts.issueDeviceToken?.(id) ?? createToken(this.opts.db, 'device', id);
    })();
    if (this.opts.onProvisioned) {
      try {
        await this.opts.onProvisioned(id, token);
      } catch (err) {
        await this.remove(id, actor).catch((e: unknown) => this.log.error({ err: e, device: id }, 'undo failed'));
        throw err;
      }
    }
    this.log.info({ device: id, tags }, 'device provisioned');
    this.changes.emit({ kind: 'device', device: id, action: 'provisioned', at: new Date().toISOString() });
    await this.reconcile([id]);
    const root = this.opts.provisionRoot?.();
    return {
      device: this.store.getDevice(id)!,
      agentConfig: {
        deviceId: id,
        cloud: {
          http: this.opts.urls.http,
          mqtt: this.opts.urls.mqtt,
          ...(this.opts.urls.ca ? { ca: this.opts.urls.ca } : {}),
        },
        credentials: { username: id, token },
        trustedKeys: [this.opts.signer.trustedKey()],
        ...(root ? { trustedRoot: root } : {}),
        tags,
      },
    };
  }

  getDevice(idIn: string): DeviceRecord {
    const id = parseDeviceId(idIn);
    const d = this.store.getDevice(id);
    if (!d || d.removedAt !== null)
      throw new OutpostError('DEVICE_NOT_FOUND', `no device "${id}"; see \`outpost device list\``, { device: id });
    return d;
  }

  listDevices(): DeviceRecord[] {
    return this.store.listDevices();
  }

  /** Revokes the device's credentials, drops its connections and its retained desired state. */
  async remove(idIn: string, actor: Actor = SYSTEM_ACTOR): Promise<void> {
    const d = this.getDevice(idIn);
    this.opts.db.transaction(() => {
      const revoked = revokeTokens(this.opts.db, 'device', d.id);
      this.audit.append(actor, 'device.remove', { devices: [d.id], details: { tokensRevoked: revoked } });
      this.store.markRemoved(d.id);
      this.telemetry.forget(d.id);
    })();
    this.answers.delete(d.id);
    try {
      await this.opts.onRevoke?.(d.id);
    } catch (err) {
      this.log.error(
        { err, device: d.id },
        'could not revoke the device at the broker; the next reconciliation retries',
      );
    }
    await this.publisher
      ?.clearDesired(d.id)
      .catch((err: unknown) => this.log.warn({ err, device: d.id }, 'could not clear the retained desired state'));
    this.log.info({ device: d.id }, 'device removed and its credentials revoked');
    this.changes.emit({ kind: 'device', device: d.id, action: 'removed', at: new Date().toISOString() });
  }

  async tag(
    idIn: string,
    add: readonly string[],
    remove: readonly string[],
    actor: Actor = SYSTEM_ACTOR,
  ): Promise<DeviceRecord> {
    const d = this.getDevice(idIn);
    const a = add.map((t, i) => parseTag(t, `add[${i}]`));
    const r = remove.map((t, i) => parseTag(t, `remove[${i}]`));
    await this.transact((sign) => {
      this.store.removeTags(d.id, r);
      this.store.addTags(d.id, a);
      this.audit.append(actor, 'device.tag', { devices: [d.id], details: { add: a, remove: r } });
      sign([d.id]);
    });
    this.changes.emit({ kind: 'device', device: d.id, action: 'tagged', at: new Date().toISOString() });
    return this.getDevice(d.id);
  }

  // ---- deployments -----------------------------------------------------------------------

  parseTarget(t: Target): Target {
    if (t.kind === 'device') return { kind: 'device', value: this.getDevice(t.value).id };
    if (t.kind === 'tag') return { kind: 'tag', value: parseTag(t.value) };
    if (t.kind === 'all') return { kind: 'all', value: '*' };
    throw new OutpostError(
      'DEPLOY_TARGET_INVALID',
      `target kind ${JSON.stringify((t as Target).kind)} is not device, tag or all`,
    );
  }

  async deploy(spec: DeploySpec, targetIn: Target, actor: Actor = SYSTEM_ACTOR): Promise<DeployResult> {
    const target = this.parseTarget(targetIn);
    const items = this.resolveDeploy(spec);
    this.refuseBusy(items.map((i) => i.model));
    const { deployments, devices } = await this.transact((sign) => {
      const deployments = items.map((it) => this.store.insertDeployment(target, it.model, it.version, it.app));
      const { changed } = sign();
      this.audit.append(actor, 'deploy', {
        devices: changed,
        details: { target, models: items.map(({ model, version }) => ({ model, version })), app: items[0].app },
      });
      return { deployments, devices: changed };
    });
    this.log.info({ target, items }, `deployed to ${describeTarget(target)}`);
    return { target, deployments, devices };
  }

  /** Refuses a change to models that a running or paused rollout is deploying. */
  refuseBusy(models: readonly string[]): void {
    const busy = this.rollouts.activeFor(models);
    if (busy.length > 0)
      throw new OutpostError(
        'ROLLOUT_BUSY',
        `rollout ${busy[0].id} (${busy[0].state}) is deploying ${busy[0].models.map((m) => `${m.model}@${m.version}`).join(', ')}; wait for it, or \`outpost rollout abort ${busy[0].id}\` first`,
        { rollout: busy[0].id },
      );
  }

  /** The model versions a deploy spec names, checked against the catalog. */
  resolveDeploy(spec: DeploySpec): DeployItem[] {
    const items: DeployItem[] = [];
    if ('app' in spec) {
      const app = formatModelId(parseModelId(spec.app, 'app'));
      const models = appModels(this.opts.db, app);
      // An empty list would deploy nothing yet answer success: refuse it like a missing one.
      if (!models || Object.keys(models).length === 0)
        throw new OutpostError(
          'DEPLOY_VERSION_NOT_FOUND',
          `app ${app} has ${models ? 'an empty' : 'no'} model list in the catalog; run \`outpost app models add\` in the app folder first`,
          { app },
        );
      for (const [model, version] of Object.entries(models)) items.push({ model, version, app });
    } else {
      const ref = parseModelRef(spec.model);
      const model = formatModelId(ref);
      const version = ref.version ?? latestVersion(this.opts.db, model);
      if (version === null)
        throw new OutpostError(
          'DEPLOY_VERSION_NOT_FOUND',
          `model ${model} has no published version; publish it with \`outpost model publish\``,
          { model },
        );
      items.push({ model, version, app: null });
    }
    for (const it of items) {
      if (!versionExists(this.opts.db, it.model, it.version)) {
        throw new OutpostError(
          'DEPLOY_VERSION_NOT_FOUND',
          `${it.model}@${it.version} is not in the catalog; see \`outpost model versions ${it.model}\``,
          { model: it.model, version: it.version },
        );
      }
    }
    return items;
  }

  async rollback(
    modelIn: string,
    targetIn: Target,
    actor: Actor = SYSTEM_ACTOR,
  ): Promise<DeployResult & { from: number; to: number }> {
    const target = this.parseTarget(targetIn);
    const model = formatModelId(parseModelId(modelIn, 'model'));
    this.refuseBusy([model]);
    const plan = planRollback(this.store.liveDeploymentsFor(target, model));
    if (!plan)
      throw new OutpostError(
        'ROLLBACK_NO_PREVIOUS',
        `${model} has no earlier deployment to ${describeTarget(target)} to go back to`,
        { model, target },
      );
    const devices = await this.transact((sign) => {
      this.store.markRolledBack(plan.undo);
      const { changed } = sign();
      this.audit.append(actor, 'rollback', {
        devices: changed,
        details: { target, model, from: plan.from, to: plan.to },
      });
      return changed;
    });
    this.log.info({ target, model, from: plan.from, to: plan.to }, 'rolled back');
    return { target, deployments: [], devices, from: plan.from, to: plan.to };
  }

  // ---- desired state ---------------------------------------------------------------------

  /** The models a device should hold now, from the live deployments and the catalog. */
  desiredModels(
    device: { id: string; tags: readonly string[] },
    ctx: DesiredContext = this.desiredContext(),
  ): DesiredModel[] {
    const eff = effectiveDeployments(ctx.live, device, ctx.scopes);
    const models: DesiredModel[] = [];
    for (const d of [...eff.values()].sort((a, b) => a.model.localeCompare(b.model))) {
      const key = `${d.model}@${d.version}`;
      let m = ctx.cache.get(key);
      if (m === undefined) ctx.cache.set(key, (m = desiredModelOf(this.opts.db, d.model, d.version)));
      if (m) models.push({ ...m, blobBase: this.blobBase });
    }
    return models;
  }

  /** A published version as a desired-state entry (no blob base), or null when it is not in the catalog. */
  catalogModel(model: string, version: number): Omit<DesiredModel, 'blobBase'> | null {
    return desiredModelOf(this.opts.db, model, version);
  }

  /** The deployments and rollout scopes every device's desired state is computed from (read once per pass). */
  desiredContext(extra: readonly Deployment[] = []): DesiredContext {
    return { live: [...this.store.liveDeployments(), ...extra], scopes: this.rollouts.scopes(), cache: new Map() };
  }

  /**
   * Brings each device's signed document up to date: a new revision when its model list (or the
   * blob base) changed, or when the document passed half of its lifetime. Returns the devices
   * that got a new revision. Signing and storing happen in one transaction per device; publishing
   * follows, after all of them.
   */
  reconcile(ids?: readonly string[]): Promise<string[]> {
    return this.transact((sign) => sign(ids).changed);
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
    const run = this.queue.then(() => this.transactNow(work));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Signs every device's document again with a new revision: after the online key changed, the
   * retained documents by the old (now revoked) key would be refused by devices that walked to the
   * new root.
   */
  resignAll(): Promise<string[]> {
    return this.transact((sign) => sign(undefined, { resign: true }).changed);
  }

  private async transactNow<T>(work: (sign: SignFn) => T): Promise<T> {
    const docs = new Map<string, string>();
    const now = new Date();
    const sign: SignFn = (ids, opts = {}) => {
      const devices = ids
        ? ids.map((id) => this.store.getDevice(id)).filter((d): d is DeviceRecord => d !== null && d.removedAt === null)
        : this.store.listDevices();
      const ctx = this.desiredContext();
      const changed: string[] = [];
      const revisions = new Map<string, number>();
      for (const d of devices) {
        const models = this.desiredModels(d, ctx);
        const digest = modelsDigest(models);
        const cur = this.store.desiredOf(d.id);
        const halfLife = cur?.expires ? Date.parse(cur.expires) - (this.lifetime * 1000) / 2 : 0;
        const stale = now.getTime() >= halfLife;
        if (cur?.digest === digest && !stale && !opts.resign) {
          revisions.set(d.id, cur.revision);
          continue;
        }
        const revision = (cur?.revision ?? 0) + 1;
        const signed = parseDesiredSigned(buildSigned(d.id, revision, models, now, this.lifetime));
        const json = JSON.stringify(this.opts.signer.sign(signed));
        this.store.saveDesired(d.id, revision, json, digest, signed.expires);
        docs.set(d.id, json);
        changed.push(d.id);
        revisions.set(d.id, revision);
      }
      return { changed, revisions };
    };
    const result = this.opts.db.transaction(() => work(sign))();
    await Promise.all([...docs].map(([id, doc]) => this.publish(id, doc)));
    for (const id of docs.keys()) this.changes.emit({ kind: 'desired', device: id, at: now.toISOString() });
    if (docs.size > 0) this.log.info({ devices: docs.size }, 'signed and published desired states');
    return result;
  }

  /** Sends an imperative command (outpost/v1/devices/{id}/commands/{name}); false when it could not be published. */
  async command(id: string, name: CommandName, args: Record<string, string> = {}): Promise<boolean> {
    if (!this.publisher) return false;
    try {
      // Signed like every command: devices refuse unsigned ones (COMMAND_UNSIGNED).
      await this.sendCommand(id, name, args);
      return true;
    } catch (err) {
      this.log.warn({ err, device: id, command: name }, 'command not published');
      return false;
    }
  }

  private async publish(id: string, doc: string): Promise<void> {
    if (!this.publisher) return;
    try {
      await this.publisher.publishDesired(id, doc);
    } catch (err) {
      // The document is in the database; the next connect republishes it.
      this.log.warn({ err, device: id }, 'publish failed; will republish on reconnect');
    }
  }

  /** Publishes every device's latest signed document again (at start and after reconnects). */
  republishAll(): Promise<number> {
    const run = this.queue.then(async () => {
      const docs = this.store.allDesiredDocs();
      await Promise.all(docs.map((d) => this.publish(d.id, d.doc)));
      return docs.length;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Signs an imperative command for one device with the online key (a fresh 128-bit nonce, a
   * lifetime of COMMAND_DEFAULT_LIFETIME_S) and publishes it; the device answers on responses/{cmd}.
   */
  async sendCommand(idIn: string, command: CommandName, args: Record<string, string> = {}): Promise<CommandSent> {
    const d = this.getDevice(idIn);
    if (!this.publisher) throw new OutpostError('BROKER_UNREACHABLE', 'the fleet publisher is not connected; retry');
    const signed = buildCommand(d.id, command, args, randomBytes(16).toString('hex'), new Date());
    await this.publisher.publishCommand(d.id, command, JSON.stringify(this.opts.signer.sign(signed)));
    this.log.info({ device: d.id, command, nonce: signed.nonce }, 'signed command sent');
    return { device: d.id, command, args, nonce: signed.nonce, expires: signed.expires, keyid: this.opts.signer.keyid };
  }

  signedOf(id: string): DesiredSigned | null {
    const doc = this.store.desiredOf(id)?.doc;
    return doc ? (JSON.parse(doc) as { signed: DesiredSigned }).signed : null;
  }

  // ---- reports ---------------------------------------------------------------------------

  /**
   * Handles a message from the publisher's subscriptions. Bad input is dropped, never thrown: a
   * malformed report or telemetry sample is logged; an unknown status word is ignored.
   */
  ingest(topic: string, payload: Buffer): void {
    const t = parseDeviceTopic(topic);
    if (!t || payload.length === 0) return;
    const at = new Date().toISOString();
    // Reports are queued and written in one UPDATE batch per event-loop turn, which skips removed
    // and unknown devices itself: no lookup per report (a fleet reports often).
    if (t.kind !== 'reported') {
      const dev = this.store.getDevice(t.deviceId);
      if (!dev || dev.removedAt !== null) return;
    }
    if (t.kind === 'status') {
      const s = statusOf(payload);
      if (s) {
        this.store.saveStatus(t.deviceId, s, at);
        this.changes.emit({ kind: 'status', device: t.deviceId, status: s, at });
      }
      return;
    }
    if (t.kind === 'telemetry') {
      const sample = this.telemetry.ingest(t.deviceId, payload);
      if (sample) {
        this.changes.emit({ kind: 'telemetry', device: t.deviceId, sample, at });
        this.onDeviceEvent(t.deviceId);
      }
      return;
    }
    if (t.kind === 'responses') {
      this.ingestAnswer(t.deviceId, t.cmd ?? '', payload, at);
      return;
    }
    if (t.kind !== 'reported') return;
    try {
      const rep = parseReported(payload);
      if (rep.device !== t.deviceId) {
        this.log.warn({ topic, device: rep.device }, 'report names another device; ignored');
        return;
      }
      this.store.saveReported(t.deviceId, JSON.stringify(rep), at);
      this.changes.emit({ kind: 'reported', device: t.deviceId, report: rep, at });
      this.onDeviceEvent(t.deviceId);
    } catch (err) {
      this.log.warn({ err, device: t.deviceId }, 'malformed report ignored');
    }
  }

  private ingestAnswer(device: string, command: string, payload: Buffer, at: string): void {
    if (!(COMMANDS as readonly string[]).includes(command) || payload.length > 16 * 1024) return;
    try {
      const body = JSON.parse(payload.toString('utf8')) as unknown;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
      const per = this.answers.get(device) ?? new Map<string, Record<string, unknown>>();
      per.set(command, { command, at, ...(body as Record<string, unknown>) });
      this.answers.set(device, per);
    } catch {
      this.log.warn({ device, command }, 'malformed command answer ignored');
    }
  }

  /** The device's last answer to each command since this cloud started (`device show`). */
  answersOf(id: string): Record<string, unknown>[] {
    return [...(this.answers.get(id)?.values() ?? [])];
  }

  /** The device's latest telemetry sample, or null before its first one. */
  telemetryOf(id: string): LatestTelemetry | null {
    return this.telemetry.latest(id);
  }

  reportedOf(id: string): ReportedState | null {
    const r = this.store.reportedOf(id);
    return r ? (JSON.parse(r) as ReportedState) : null;
  }

  rolloutStatus(): RolloutDevice[] {
    return this.store.listDevices().map((d) => rolloutOf(d, this.signedOf(d.id), this.reportedOf(d.id)));
  }
}

/**
 * A status message: the plain word of docs/protocol.md, or the agent's JSON form
 * `{"state": "online", "at", "agentVersion"}` (what agent/sync/mqtt-session.ts publishes).
 */
function statusOf(payload: Buffer): typeof STATUS_ONLINE | typeof STATUS_OFFLINE | null {
  const text = payload.toString('utf8').trim();
  let s: unknown = text;
  if (text.startsWith('{') && text.length <= 4096) {
    try {
      s = (JSON.parse(text) as { state?: unknown }).state;
    } catch {
      s = null;
    }
  }
  return s === STATUS_ONLINE || s === STATUS_OFFLINE ? s : null;
}
