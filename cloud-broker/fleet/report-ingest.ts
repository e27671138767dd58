import { COMMANDS } from '../../protocol/topics.js';
import type { Logger } from '../../protocol/log.js';
import { parseReported } from '../../protocol/reported-state.js';
import { parseDeviceTopic, STATUS_OFFLINE, STATUS_ONLINE } from '../../protocol/topics.js';
import type { ChangeFeed } from './changes.js';
import type { FleetStore } from './store.js';
import type { TelemetryStore } from './telemetry.js';

/**
 * Takes in what devices publish (reports, status, telemetry, command answers) from the service
 * subscriber's topics. Bad input is dropped, never thrown: a malformed report or telemetry sample
 * is logged; an unknown status word is ignored.
 *
 * With replicas, every replica's subscriber receives every device's messages (the brokers share
 * them through Redis, or there is one external broker), so only the leader writes them to the
 * database (`writes`), once; every replica still validates them and tells its own watchers (the
 * live page views), since a page may be served by any replica. docs/scale.md says why.
 */
export class ReportIngest {
  /** The last answer of each device to each command (device -> command -> answer); in memory, bounded by devices x commands. */
  private readonly answers = new Map<string, Map<string, Record<string, unknown>>>();
  /** Messages of this turn waiting for their device's liveness check (whenLive). */
  private pendingLive: { id: string; then: () => void }[] = [];

  constructor(
    private readonly store: FleetStore,
    private readonly telemetry: TelemetryStore,
    private readonly changes: ChangeFeed,
    private readonly log: Logger,
    /** Called after a report or telemetry sample was taken in (the rollout scheduler listens). */
    private readonly onDeviceEvent: (deviceId: string) => void,
  ) {}

  /** Whether this replica writes what it takes in (the leader); true for a lone cloud. */
  writes: () => boolean = () => true;

  ingest(topic: string, payload: Buffer): void {
    const t = parseDeviceTopic(topic);
    if (!t || payload.length === 0) return;
    const at = new Date().toISOString();
    // Reports are queued and written in one UPDATE batch per event-loop turn, which skips removed
    // and unknown devices itself: no lookup per report (a fleet reports often). Everything else
    // waits for one batched liveness check per turn (whenLive).
    if (t.kind === 'status') {
      const s = statusOf(payload);
      if (!s) return;
      this.whenLive(t.deviceId, () => {
        if (this.writes()) this.store.saveStatus(t.deviceId, s, at);
        this.changes.emit({ kind: 'status', device: t.deviceId, status: s, at });
      });
      return;
    }
    if (t.kind === 'telemetry') {
      this.whenLive(t.deviceId, () => {
        const sample = this.telemetry.parse(t.deviceId, payload);
        if (sample && (!this.writes() || this.telemetry.keep(t.deviceId, sample))) {
          this.changes.emit({ kind: 'telemetry', device: t.deviceId, sample, at });
          this.onDeviceEvent(t.deviceId);
        }
      });
      return;
    }
    if (t.kind === 'responses') {
      this.whenLive(t.deviceId, () => this.ingestAnswer(t.deviceId, t.cmd ?? '', payload, at));
      return;
    }
    if (t.kind !== 'reported') return;
    try {
      const rep = parseReported(payload);
      if (rep.device !== t.deviceId) {
        this.log.warn({ topic, device: rep.device }, 'report names another device; ignored');
        return;
      }
      if (this.writes()) this.store.saveReported(t.deviceId, JSON.stringify(rep), at);
      this.changes.emit({ kind: 'reported', device: t.deviceId, report: rep, at });
      this.onDeviceEvent(t.deviceId);
    } catch (err) {
      this.log.warn({ err, device: t.deviceId }, 'malformed report ignored');
    }
  }

  /**
   * Runs `then` if the device is provisioned and not removed, checked for every message of this
   * event-loop turn in one statement: a reconnect storm brings a birth message per CONNECT, and
   * one device read each (two statements) was a round trip each on PostgreSQL, on every replica.
   */
  private whenLive(id: string, then: () => void): void {
    this.pendingLive.push({ id, then });
    if (this.pendingLive.length === 1) setImmediate(() => this.drain());
  }

  /** Runs the liveness checks queued so far (each turn, and at stop so that none is lost). */
  drain(): void {
    const queued = this.pendingLive;
    this.pendingLive = [];
    if (queued.length === 0 || !this.store.db.open) return;
    let live: Set<string>;
    try {
      live = this.store.liveIds([...new Set(queued.map((q) => q.id))]);
    } catch (err) {
      // Never thrown at the broker: the devices publish again (the next birth, report or sample).
      this.log.error({ err, messages: queued.length }, 'could not check the devices of these messages; dropped');
      return;
    }
    for (const q of queued) if (live.has(q.id)) q.then();
  }

  /** The device's last answer to each command since this cloud started (`device show`). */
  answersOf(id: string): Record<string, unknown>[] {
    return [...(this.answers.get(id)?.values() ?? [])];
  }

  /** Drops what is kept in memory for a removed device. */
  forget(id: string): void {
    this.answers.delete(id);
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
