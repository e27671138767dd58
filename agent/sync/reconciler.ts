import { moduleLogger, type Logger } from '../../protocol/log.js';
import { OutpostError, toOutpostError, isRetryable } from '../../protocol/errors/index.js';
import type { DesiredModel, DesiredState } from '../../protocol/desired-state.js';
import type { Capabilities, ReportedModel, ReportedState } from '../../protocol/reported-state.js';
import type { Store, InstallPhase } from '../store/index.js';
import type { BlobSource } from '../fetch/index.js';
import { plan, type FailureMemo, type Step } from './planner.js';
import { ExclusiveRunner } from './exclusive-runner.js';
import { Backoff } from './backoff.js';
import type { SyncState } from './sync-state.js';
import { pinnedMemo, rolledBack } from './rollback-pin.js';
import { absent, next, reportedOf, type LifecycleEvent, type ModelRecord } from './lifecycle.js';
import type { TrustStore } from './trust-store.js';
import { DesiredIntake } from './desired-intake.js';

/**
 * The reconcile loop: verified desired state -> plan -> apply, one apply at a time, reporting
 * every transition. A model's state moves only through the lifecycle table (lifecycle.ts): this
 * class fires its events, and the report is derived from the records the table produces. Only verified documents (DesiredIntake, desired-intake.ts) reach the planner; the applied
 * revision is persisted so that a replayed older document is refused after a restart too.
 *
 * The loop is level-triggered: every apply starts from what is on disk (store.list()), so a
 * crash, a cancelled apply or a reconnect is handled by simply applying again.
 */
export interface ReconcilerOptions {
  deviceId: string;
  /** The root of trust: its online keys verify desired states; it walks forward on unknown keys. */
  trust: TrustStore;
  store: Store;
  blobs: BlobSource;
  /** Persisted applied revision and last verified document. */
  state: SyncState;
  /** The compatibility check: why this device cannot run a model, or null. */
  incompatible: (model: DesiredModel) => OutpostError | null;
  /** Load + smoke-run a version before it becomes current (throw to refuse it). */
  beforeActivate?: (versionDir: string, model: DesiredModel) => Promise<void>;
  /** Called after a version became current (the runtime switches to it) or a model was removed. */
  onActivated?: (id: string, version: number, dir: string) => Promise<void> | void;
  onRemoved?: (id: string) => Promise<void> | void;
  onEvent?: (event: {
    type: 'installed' | 'activated' | 'failed' | 'rolled-back' | 'removed';
    model: string;
    version?: number;
    error?: { code: string; message: string };
  }) => void;
  publish: (doc: ReportedState) => void;
  capabilities: () => Capabilities;
  /** How the runtime serves a model's active version; reported when it serves raw tensors only. */
  servingOf?: (id: string) => ReportedModel['serving'] | undefined;
  agentVersion: string;
  /** When this agent started (reported, so a rollout can tell a restart); default: the process start. */
  startedAt?: string;
  log: Logger;
  now?: () => Date;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Install progress is reported at most this often (outcomes go out at once). */
const PROGRESS_EVERY_MS = 1000;

export class Reconciler {
  private desired: DesiredState | null = null;
  private readonly models = new Map<string, ModelRecord>();
  private readonly failures = new Map<string, FailureMemo>();
  private readonly runner: ExclusiveRunner;
  private readonly retry: Backoff;
  private retryTimer: NodeJS.Timeout | null = null;
  private publishTimer: NodeJS.Timeout | null = null;
  private lastPublishAt = 0;
  private lastError: { code: string; message: string } | null = null;
  private readonly log: Logger;
  private stopped = false;
  private readonly startedAt: string;
  private readonly intake: DesiredIntake;

  constructor(private readonly opts: ReconcilerOptions) {
    this.startedAt = opts.startedAt ?? new Date(Math.floor(Date.now() - process.uptime() * 1000)).toISOString();
    this.log = moduleLogger(opts.log, 'sync');
    this.runner = new ExclusiveRunner((err) => this.log.error({ err }, 'apply failed unexpectedly'));
    this.retry = new Backoff(opts.retryMinMs ?? 2_000, opts.retryMaxMs ?? 300_000);
    this.intake = new DesiredIntake({
      deviceId: opts.deviceId,
      trust: opts.trust,
      state: opts.state,
      now: opts.now,
      refused: (code, message) => this.refused(code, message),
      resubmit: (payload) => this.onDesired(payload),
      stopped: () => this.stopped,
    });
  }

  /** Starts from the persisted document (a device that reboots offline keeps converging). */
  async start(): Promise<void> {
    const saved = this.opts.state.lastDocument();
    if (saved !== null) {
      try {
        this.accept(this.intake.verifyStored(saved));
      } catch (err) {
        this.log.warn(
          { err: toOutpostError(err).toJSON() },
          'persisted desired state no longer valid; waiting for a fresh one',
        );
      }
    }
    await this.refreshInstalled();
    this.publishNow();
  }

  /** A desired-state message from the broker (raw payload). Bad documents never reach the planner. */
  onDesired(payload: Buffer | string): void {
    const received = this.intake.receive(payload);
    if (received === null) return;
    const { desired: verified, floorRevoked } = received;
    const hadError = this.lastError !== null;
    this.lastError = null;
    if (this.desired && verified.revision === this.desired.revision) {
      this.log.debug({ revision: verified.revision }, 'desired state redelivered');
      // The genuine document again after a refused one: say so, or the cloud keeps showing the refusal.
      if (hadError) this.publishNow();
      // Every reconnect redelivers the retained document: an apply in flight already works toward
      // it, so it must not be cancelled (a flapping broker would otherwise restart every install).
      this.kick({ preempt: false });
      return;
    }
    this.opts.state.save(
      verified.revision,
      typeof payload === 'string' ? payload : payload.toString('utf8'),
      floorRevoked,
    );
    this.failures.clear();
    this.accept(verified);
  }

  private refused(code: string, message: string): void {
    this.lastError = { code, message };
    this.log.warn({ code }, message);
    this.publishNow();
  }

  /** `sync` command: forget failures and apply again now. */
  syncNow(): void {
    this.failures.clear();
    this.kick();
  }

  /** `rollback` command: go back to the previous kept version and pin it until the desired state changes. */
  async rollback(id: string): Promise<{ from: number; to: number }> {
    const result = await this.opts.store.rollback(id);
    const pin = { model: id, version: result.from, to: result.to, revision: this.desired?.revision ?? null };
    // Persisted before the answer: after a kill -9 the restarted agent must not re-activate
    // `from` from the (unchanged) desired state. A crash between the flip and this write leaves
    // the command unanswered, and the desired state then wins, as for any command not acknowledged.
    this.opts.state.pin(pin);
    this.failures.set(`${id}@${result.from}`, pinnedMemo(pin));
    const dir = await this.opts.store.currentDir(id);
    if (dir) await this.opts.onActivated?.(id, result.to, dir);
    this.move(id, rolledBack(pin));
    this.opts.onEvent?.({ type: 'rolled-back', model: id, version: result.to });
    this.publishNow();
    return result;
  }

  report(): ReportedState {
    return {
      type: 'reported',
      device: this.opts.deviceId,
      agentVersion: this.opts.agentVersion,
      appliedRevision: this.desired?.revision ?? this.opts.state.lastRevision(),
      time: (this.opts.now?.() ?? new Date()).toISOString(),
      models: [...this.models.values()]
        .map(reportedOf)
        .filter((m): m is ReportedModel => m !== null)
        .map((m) => {
          const serving = m.state === 'active' ? this.opts.servingOf?.(m.id) : undefined;
          return serving ? { ...m, serving } : m;
        })
        .sort((a, b) => a.id.localeCompare(b.id)),
      capabilities: this.opts.capabilities(),
      ...(this.lastError ? { desiredError: this.lastError } : {}),
      startedAt: this.startedAt,
    };
  }

  publishNow(): void {
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.publishTimer = null;
    this.lastPublishAt = Date.now();
    if (!this.stopped) this.opts.publish(this.report());
  }

  /**
   * Install progress (downloading bytes, verifying, installing): at most one report a second,
   * the last state always sent. An install that ends within the second sends none of these: the
   * outcome (active, failed) goes out with publishNow, which also cancels the pending one. Each
   * report is a retained QoS 1 publish the cloud parses and stores, so the seven a fast install
   * used to send cost more than the install's own bookkeeping.
   */
  private publishSoon(): void {
    if (this.publishTimer || this.stopped) return;
    const wait = this.lastPublishAt + PROGRESS_EVERY_MS - Date.now();
    if (wait <= 0) {
      this.publishNow();
      return;
    }
    this.publishTimer = setTimeout(() => this.publishNow(), wait);
  }

  /** Resolves when no apply runs or is queued (tests and shutdown). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  /** Parks the running apply (downloads keep their partial files and resume later). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    await this.runner.stop();
  }

  private accept(desired: DesiredState): void {
    this.desired = desired;
    this.log.info(
      { revision: desired.revision, models: desired.models.map((m) => `${m.id}@${m.version}`) },
      'desired state accepted',
    );
    // Pins of this very revision exist only when it is the persisted document read at start:
    // a new revision drops them (SyncState.save) and the failures with them.
    const pins = this.opts.state.pins(desired.revision);
    for (const p of pins) this.failures.set(`${p.model}@${p.version}`, pinnedMemo(p));
    for (const m of desired.models) {
      const prev = this.models.get(m.id);
      const pin = pins.filter((p) => p.model === m.id).at(-1);
      if (pin) {
        if (prev?.state !== 'rolled-back') {
          // Still working toward the desired version, held back from it by the pin.
          if (prev?.version !== m.version) this.move(m.id, { type: 'want', version: m.version });
          this.move(m.id, rolledBack(pin));
        }
      } else if (!prev || prev.version !== m.version || prev.state === 'failed') {
        this.move(m.id, { type: prev?.activeVersion === m.version ? 'have' : 'want', version: m.version });
      }
    }
    // Report the new revision now: an apply with nothing to do publishes nothing, and the cloud would never see convergence.
    this.publishNow();
    this.kick();
  }

  private kick(opts: { preempt?: boolean } = {}): void {
    if (this.stopped) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.runner.run((signal) => this.apply(signal), opts);
  }

  private async apply(signal: AbortSignal): Promise<void> {
    const desired = this.desired;
    if (!desired) return;
    const installed = await this.opts.store.list();
    const steps = plan({
      desired: desired.models,
      installed,
      failures: [...this.failures.values()],
      incompatible: (m) => {
        const e = this.opts.incompatible(m);
        return e ? { code: e.code, message: e.message } : null;
      },
    });
    for (const m of installed) this.syncActive(m.id, m.current);
    let transient = false;
    for (const step of steps) {
      if (signal.aborted) return;
      try {
        await this.execute(step, desired, signal);
      } catch (err) {
        if (signal.aborted) return;
        const e = toOutpostError(err);
        const version = 'version' in step ? step.version : 0;
        const retryable = isRetryable(e.code);
        transient ||= retryable;
        this.failures.set(`${step.id}@${version}`, { id: step.id, version, code: e.code, retryable });
        this.move(step.id, { type: 'fail', error: { code: e.code, message: e.message } });
        this.opts.onEvent?.({ type: 'failed', model: step.id, version, error: { code: e.code, message: e.message } });
        this.log.warn({ model: step.id, version, code: e.code }, `step ${step.kind} failed: ${e.message}`);
        this.publishNow();
      }
    }
    // Collect unreferenced versions and cache blobs only after an apply in which nothing failed:
    // between retries, the blobs a failed install already fetched must stay for the next attempt.
    if (steps.length > 0 && !signal.aborted && ![...this.failures.values()].some((f) => f.retryable)) {
      await this.opts.store.gc().catch((err) => this.log.warn({ err }, 'gc failed'));
    }
    if (transient && !this.stopped) {
      const delay = this.retry.next();
      this.log.info({ delayMs: delay }, 'retrying transient failures later');
      this.retryTimer = setTimeout(() => {
        for (const [k, f] of this.failures) if (f.retryable) this.failures.delete(k);
        this.kick();
      }, delay);
    } else if (!transient) this.retry.reset();
  }

  /** The executor table: one function per step kind. */
  private async execute(step: Step, desired: DesiredState, signal: AbortSignal): Promise<void> {
    const model = desired.models.find((m) => m.id === step.id);
    switch (step.kind) {
      case 'reject':
        throw new OutpostError(step.code as never, step.message, { model: step.id, version: step.version });
      case 'install': {
        if (!model) return;
        const result = await this.opts.store.installVersion({
          id: model.id,
          version: model.version,
          files: model.files,
          source: model.blobBase ? { ...this.opts.blobs, urlOf: (sha) => `${model.blobBase}${sha}` } : this.opts.blobs,
          beforeActivate: this.opts.beforeActivate ? (dir) => this.opts.beforeActivate!(dir, model) : undefined,
          signal,
          onProgress: ({ phase, done, total }: { phase: InstallPhase; done: number; total: number }) => {
            // An aborted apply may still report a last phase; the model's record belongs to the next one.
            if (signal.aborted) return;
            this.move(model.id, PHASE_EVENTS[phase](done, total));
            this.publishSoon();
          },
        });
        this.log.info(
          { model: model.id, version: model.version, downloaded: result.downloaded, reused: result.reused },
          'installed',
        );
        this.opts.onEvent?.({ type: 'installed', model: model.id, version: model.version });
        await this.activated(model.id, model.version);
        return;
      }
      case 'activate': {
        await this.opts.store.activate(step.id, step.version, {
          beforeActivate:
            this.opts.beforeActivate && model ? (dir) => this.opts.beforeActivate!(dir, model) : undefined,
        });
        await this.activated(step.id, step.version);
        return;
      }
      case 'remove': {
        await this.opts.onRemoved?.(step.id);
        await this.opts.store.remove(step.id);
        this.move(step.id, { type: 'remove' });
        this.opts.onEvent?.({ type: 'removed', model: step.id });
        this.publishNow();
        return;
      }
    }
  }

  private async activated(id: string, version: number): Promise<void> {
    const dir = await this.opts.store.currentDir(id);
    if (dir) await this.opts.onActivated?.(id, version, dir);
    this.failures.delete(`${id}@${version}`);
    // A version of the model is current again by the desired state (a `sync` command lifted the pin).
    this.opts.state.unpin(id);
    // An apply that a newer document aborted may still finish its flip: the record then works
    // toward another version, and this only tells it what is current now.
    if (this.models.get(id)?.version === version) this.move(id, { type: 'activate', version });
    else this.move(id, { type: 'observe', current: version });
    this.opts.onEvent?.({ type: 'activated', model: id, version });
    this.publishNow();
  }

  private async refreshInstalled(): Promise<void> {
    for (const m of await this.opts.store.list()) this.syncActive(m.id, m.current);
  }

  /** What the store has current for a model, read before each apply and at start. */
  private syncActive(id: string, current: number | null): void {
    const rec = this.models.get(id);
    if (!rec) {
      if (current !== null) this.move(id, { type: 'have', version: current });
      return;
    }
    // A failed version that is current on disk (its runtime activation failed) stays failed.
    if (current !== null && rec.version === current && rec.state !== 'failed' && rec.state !== 'active')
      this.move(id, { type: 'have', version: current });
    else if (rec.activeVersion !== current) this.move(id, { type: 'observe', current });
  }

  /** The one place a model's state changes: through the lifecycle table. */
  private move(id: string, event: LifecycleEvent): void {
    const rec = this.models.get(id) ?? absent(id);
    let out: ModelRecord;
    try {
      out = next(rec, event);
    } catch (err) {
      this.log.error({ model: id, state: rec.state, event: event.type }, 'illegal model lifecycle transition');
      throw err;
    }
    if (out.state === 'absent') this.models.delete(id);
    else this.models.set(id, out);
  }
}

/** The store's install phases as lifecycle events. */
const PHASE_EVENTS: Record<InstallPhase, (done: number, total: number) => LifecycleEvent> = {
  downloading: (bytes, total) => ({ type: 'download', bytes, total }),
  verifying: () => ({ type: 'verify' }),
  installing: () => ({ type: 'install' }),
};
