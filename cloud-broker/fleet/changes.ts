import type { Logger } from '../../protocol/log.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import type { TelemetrySample } from '../../protocol/telemetry.js';

/**
 * What just changed in the fleet, as the Fleet saw it: a device's connection status, report or
 * telemetry sample arrived, its desired state was re-signed, or it was provisioned, removed or
 * tagged. The web page's live updates and the device event log are built from these; they are
 * notifications after the fact (the database already holds the change), never a source of truth.
 */
export type FleetChange =
  | { kind: 'status'; device: string; status: 'online' | 'offline'; at: string }
  | { kind: 'reported'; device: string; report: ReportedState; at: string }
  | { kind: 'telemetry'; device: string; sample: TelemetrySample; at: string }
  | { kind: 'desired'; device: string; at: string }
  | { kind: 'device'; device: string; action: 'provisioned' | 'removed' | 'tagged'; at: string };

export type FleetWatcher = (change: FleetChange) => void;

/** Synchronous fan-out to watchers. A watcher that throws is logged and never stops the fleet. */
export class ChangeFeed {
  private readonly watchers = new Set<FleetWatcher>();

  constructor(private readonly log: Logger) {}

  /** Returns the function that stops watching. */
  watch(fn: FleetWatcher): () => void {
    this.watchers.add(fn);
    return () => {
      this.watchers.delete(fn);
    };
  }

  emit(change: FleetChange): void {
    for (const w of this.watchers) {
      try {
        w(change);
      } catch (err) {
        this.log.warn({ err, change: change.kind }, 'a fleet watcher failed');
      }
    }
  }
}
