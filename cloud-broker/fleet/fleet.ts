import { randomBytes } from 'node:crypto';
import { buildCommand } from '../../protocol/command.js';
import type { CommandName } from '../../protocol/topics.js';
import type { AgentConfigDraft } from './provision.js';
import type { DesiredModel, DesiredSigned } from '../../protocol/desired-state.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId } from '../../protocol/ids.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import { parseDeviceId } from '../../protocol/topics.js';
import { createToken, revokeTokens } from '../auth/tokens.js';
import type { Db } from '../db/open.js';
import type { Signer } from '../signing/sign.js';
import { desiredModelOf } from './catalog-read.js';
import { ChangeFeed } from './changes.js';
import { planRollback } from './desired.js';
import { resolveDeploy, type DeployItem, type DeploySpec } from './deploy-spec.js';
import { DesiredStates, type DesiredContext, type SignFn } from './desired-states.js';
import { ReportIngest } from './report-ingest.js';
import type { Publisher } from './publisher.js';
import { rolloutOf, type RolloutDevice } from './rollout.js';
import { AuditStore, SYSTEM_ACTOR, type Actor } from './audit-store.js';
import { RolloutStore } from './rollout-store.js';
import { FleetStore } from './store.js';
import { TelemetryStore, type LatestTelemetry } from './telemetry.js';
import { describeTarget, parseTag, type Deployment, type DeviceRecord, type Target } from './types.js';

export type { DeployItem, DeploySpec, DesiredContext, SignFn };

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

export interface CommandSent {
  device: string;
  command: CommandName;
  args: Record<string, string>;
  nonce: string;
  expires: string;
  keyid: string;
}

export interface DeployResult {
  target: Target;
  deployments: Deployment[];
  /** Devices whose desired state changed and got a new revision. */
  devices: string[];
}

const DAY = 24 * 3600;

/**
 * The fleet: devices, tags, deployments and commands. Each device's signed desired state is kept
 * by DesiredStates (desired-states.ts), and what devices publish is taken in by ReportIngest
 * (report-ingest.ts); the Fleet is the one object the routes and the scheduler hold.
 */
export class Fleet {
  readonly store: FleetStore;
  readonly telemetry: TelemetryStore;
  /** Every change as it happens, for live views (cloud-broker/fleet/changes.ts). */
  readonly changes: ChangeFeed;
  readonly audit: AuditStore;
  readonly rollouts: RolloutStore;
  readonly desired: DesiredStates;
  readonly reports: ReportIngest;
  private readonly log: Logger;
  /** Called after a report or telemetry sample was taken in (the rollout scheduler listens). */
  onDeviceEvent: (deviceId: string) => void = () => undefined;

  constructor(private readonly opts: FleetOptions) {
    this.store = new FleetStore(opts.db);
    this.audit = new AuditStore(opts.db);
    this.rollouts = new RolloutStore(opts.db);
    this.log = moduleLogger(opts.log, 'fleet');
    this.store.onFlushError = (err) =>
      this.log.warn({ err }, 'could not write the queued reports and statuses; they stay queued and are retried');
    this.telemetry = new TelemetryStore(opts.db, this.log.child({ part: 'telemetry' }));
    this.changes = new ChangeFeed(this.log);
    this.desired = new DesiredStates({
      db: opts.db,
      store: this.store,
      rollouts: this.rollouts,
      signer: opts.signer,
      changes: this.changes,
      log: this.log,
      lifetimeSeconds: opts.lifetimeSeconds ?? 7 * DAY,
      blobBase: opts.blobBase ?? `${opts.urls.http.replace(/\/$/, '')}/v1/blobs/`,
    });
    this.reports = new ReportIngest(this.store, this.telemetry, this.changes, this.log, (id) => this.onDeviceEvent(id));
  }

  /**
   * Points devices at a blob mirror (a CDN, a caching proxy) from the next signed revision on.
   * Safe without trusting the mirror: devices verify every blob against the signed hash and size.
   */
  useBlobMirror(base: string): void {
    this.desired.useBlobMirror(base);
  }

  /** Attaches the MQTT publisher; call republishAll from its onConnect. */
  attach(publisher: Publisher): void {
    this.desired.attach(publisher);
  }

  /** Re-signs documents at half-life so that a running cloud never lets a device's state expire. */
  startRefresh(everyMs = 3600_000): void {
    this.desired.startRefresh(everyMs);
  }

  stopRefresh(): void {
    this.desired.stopRefresh();
  }

  stop(): void {
    this.desired.stopRefresh();
    this.reports.drain();
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
    this.reports.forget(d.id);
    try {
      await this.opts.onRevoke?.(d.id);
    } catch (err) {
      this.log.error(
        { err, device: d.id },
        'could not revoke the device at the broker; the next reconciliation retries',
      );
    }
    await this.desired.mqtt
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
    return resolveDeploy(this.opts.db, spec);
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
  desiredModels(device: { id: string; tags: readonly string[] }, ctx?: DesiredContext): DesiredModel[] {
    return this.desired.desiredModels(device, ctx);
  }

  /** A published version as a desired-state entry (no blob base), or null when it is not in the catalog. */
  catalogModel(model: string, version: number): Omit<DesiredModel, 'blobBase'> | null {
    return desiredModelOf(this.opts.db, model, version);
  }

  /** The deployments and rollout scopes every device's desired state is computed from (read once per pass). */
  desiredContext(extra: readonly Deployment[] = []): DesiredContext {
    return this.desired.context(extra);
  }

  /** See DesiredStates.reconcile. */
  reconcile(ids?: readonly string[]): Promise<string[]> {
    return this.desired.reconcile(ids);
  }

  /** See DesiredStates.transact: a change and the desired states it causes, in one transaction. */
  transact<T>(work: (sign: SignFn) => T): Promise<T> {
    return this.desired.transact(work);
  }

  /** See DesiredStates.resignAll. */
  resignAll(): Promise<string[]> {
    return this.desired.resignAll();
  }

  /** Sends an imperative command (outpost/v1/devices/{id}/commands/{name}); false when it could not be published. */
  async command(id: string, name: CommandName, args: Record<string, string> = {}): Promise<boolean> {
    if (!this.desired.mqtt) return false;
    try {
      // Signed like every command: devices refuse unsigned ones (COMMAND_UNSIGNED).
      await this.sendCommand(id, name, args);
      return true;
    } catch (err) {
      this.log.warn({ err, device: id, command: name }, 'command not published');
      return false;
    }
  }

  /** Publishes every device's latest signed document again (at start and after reconnects). */
  republishAll(): Promise<number> {
    return this.desired.republishAll();
  }

  /**
   * Signs an imperative command for one device with the online key (a fresh 128-bit nonce, a
   * lifetime of COMMAND_DEFAULT_LIFETIME_S) and publishes it; the device answers on responses/{cmd}.
   */
  async sendCommand(idIn: string, command: CommandName, args: Record<string, string> = {}): Promise<CommandSent> {
    const d = this.getDevice(idIn);
    const mqtt = this.desired.mqtt;
    if (!mqtt) throw new OutpostError('BROKER_UNREACHABLE', 'the fleet publisher is not connected; retry');
    const signed = buildCommand(d.id, command, args, randomBytes(16).toString('hex'), new Date());
    await mqtt.publishCommand(d.id, command, JSON.stringify(this.opts.signer.sign(signed)));
    this.log.info({ device: d.id, command, nonce: signed.nonce }, 'signed command sent');
    return { device: d.id, command, args, nonce: signed.nonce, expires: signed.expires, keyid: this.opts.signer.keyid };
  }

  signedOf(id: string): DesiredSigned | null {
    return this.desired.signedOf(id);
  }

  /** Takes in a message from the publisher's subscriptions (report-ingest.ts). */
  ingest(topic: string, payload: Buffer): void {
    this.reports.ingest(topic, payload);
  }

  /** The device's last answer to each command since this cloud started (`device show`). */
  answersOf(id: string): Record<string, unknown>[] {
    return this.reports.answersOf(id);
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
    return this.devicesWithState().map((d) => rolloutOf(d.device, d.signed, d.reported));
  }

  /**
   * Every live device with its signed desired state and its last report, in three statements
   * whatever the fleet's size (the fleet page, the models view, the rollout status).
   */
  devicesWithState(): { device: DeviceRecord; signed: DesiredSigned | null; reported: ReportedState | null }[] {
    const devices = this.store.listDevices();
    const docs = this.store.documentsOfAll();
    return devices.map((device) => {
      const d = docs.get(device.id);
      return {
        device,
        signed: d?.desired ? (JSON.parse(d.desired) as { signed: DesiredSigned }).signed : null,
        reported: d?.reported ? (JSON.parse(d.reported) as ReportedState) : null,
      };
    });
  }
}
