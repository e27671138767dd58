import { moduleLogger, type Logger } from '../../protocol/log.js';
import { SCHEDULER_ACTOR } from './audit-store.js';
import type { Fleet } from './fleet.js';
import type { RolloutRecord } from './rollout-store.js';
import { decideStep, type Observation } from './rollout-step.js';
import type { Rollouts } from './rollouts.js';

/**
 * The one scheduler that moves rollouts forward. It keeps no state of its own: every step reads
 * the rollout from the database, decides (rollout-step.ts, pure), and applies the decision in
 * one transaction together with the desired states it signs (fleet.transact). So a cloud that
 * restarts resumes where it stopped, and a device is never sent twice: its "sent" mark and its
 * new document commit together (and a trigger refuses a second mark).
 *
 * Steps run on a timer (deadlines: soak ends, timeouts, the per-minute rate) and soon after a
 * report or telemetry sample from a device (activation, failures), coalesced so a burst of
 * reports costs one step. One step runs at a time.
 *
 * One scheduler per database: with several cloud replicas only the leader runs it
 * (cloud-broker/fleet/run-once.ts), and every step checks `fence` in its transaction first, so
 * a leader that was paused past its lease marks nothing once another replica has taken over.
 */
export interface SchedulerOptions {
  /** The timer period (default 1 s). */
  tickMs?: number;
  /** Delay that coalesces the steps that device events ask for (default 50 ms). */
  debounceMs?: number;
  /** Called first inside each step's transaction; false: this replica no longer leads, skip the step. */
  fence?: () => boolean;
  log: Logger;
}

export class RolloutScheduler {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Timeout | null = null;
  private wake: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly tickMs: number;
  private readonly debounceMs: number;
  private readonly fence: () => boolean;

  constructor(
    private readonly fleet: Fleet,
    private readonly rollouts: Rollouts,
    opts: SchedulerOptions,
  ) {
    this.log = moduleLogger(opts.log, 'rollout-scheduler');
    this.tickMs = opts.tickMs ?? 1000;
    this.debounceMs = opts.debounceMs ?? 50;
    this.fence = opts.fence ?? (() => true);
    rollouts.onChange = () => this.kick(0);
  }

  start(): void {
    this.stopped = false;
    this.timer ??= setInterval(() => this.kick(0), this.tickMs);
    this.timer.unref();
    this.kick(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    if (this.wake) clearTimeout(this.wake);
    this.timer = this.soon = this.wake = null;
    await this.running;
  }

  /** A device reported: step soon if any rollout is active. */
  onDeviceEvent(): void {
    this.kick(this.debounceMs);
  }

  /** Asks for a step within `delayMs`; a step already running is followed by one more. */
  kick(delayMs: number): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.running = this.tick()
        .catch((err: unknown) => this.log.error({ err }, 'rollout step failed; retrying at the next tick'))
        .finally(() => {
          this.running = null;
          if (this.again) {
            this.again = false;
            this.kick(0);
          }
        });
    }, delayMs);
    this.soon.unref();
  }

  /** One step of every active rollout, oldest first. Resolves when they are applied. */
  async tick(): Promise<void> {
    for (const r of this.fleet.rollouts.active()) {
      if (this.stopped) return;
      await this.step(r.id);
    }
  }

  private async step(id: number): Promise<void> {
    const f = this.fleet;
    const health = await f.transact((sign) => {
      if (!this.fence()) {
        this.log.warn({ rollout: id }, 'step skipped: this replica no longer holds the fleet-leader lease');
        return [];
      }
      // Read inside the transaction: an operator's pause or abort that committed just before wins.
      const r = f.rollouts.get(id);
      if (!r || (r.state !== 'running' && r.state !== 'paused')) return [];
      const now = Date.now();
      const d = decideStep({
        rollout: r,
        batches: f.rollouts.batches(id),
        devices: f.rollouts.devices(id),
        observe: (device) => this.observe(device),
        now,
        sentLastMinute:
          r.policy.maxPerMinute === null ? 0 : f.rollouts.sentSince(id, new Date(now - 60_000).toISOString()),
      });
      const at = new Date(now).toISOString();
      for (const x of d.devices) f.rollouts.updateDevice(id, x.device, x.patch);
      for (const x of d.batches) f.rollouts.updateBatch(id, x.index, x.patch);
      if (d.send) {
        f.rollouts.markSent(id, d.send.devices, at);
        const { revisions } = sign(d.send.devices);
        for (const dev of d.send.devices) f.rollouts.updateDevice(id, dev, { revision: revisions.get(dev) ?? null });
      }
      for (const a of d.audit)
        f.audit.append(SCHEDULER_ACTOR, a.action, { rollout: id, devices: a.devices, details: a.details, at });
      if (d.end) this.rollouts.endBySchedule(r as RolloutRecord, d.end, sign);
      if (d.send) this.log.info({ rollout: id, batch: d.send.batch, devices: d.send.devices.length }, 'batch sent');
      if (d.wakeAt !== null) this.wakeAt(d.wakeAt);
      return d.requestHealth;
    });
    // Commands are not retained: a device offline now is asked again at the next request interval.
    await Promise.all(health.map((dev) => f.command(dev, 'telemetry')));
  }

  /** A step when the first soak ends, sooner than the timer's next tick would come. */
  private wakeAt(at: number): void {
    const delay = Math.max(0, at - Date.now()) + 5;
    if (this.stopped || delay >= this.tickMs) return;
    if (this.wake) clearTimeout(this.wake);
    this.wake = setTimeout(() => {
      this.wake = null;
      this.kick(0);
    }, delay);
    this.wake.unref();
  }

  private observe(device: string): Observation {
    const d = this.fleet.store.getDevice(device);
    if (!d || d.removedAt !== null) return { removed: true, reported: null, telemetry: null };
    return { removed: false, reported: this.fleet.reportedOf(device), telemetry: this.fleet.telemetryOf(device) };
  }
}
