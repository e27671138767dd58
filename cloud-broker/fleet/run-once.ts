import { moduleLogger, type Logger } from '../../protocol/log.js';
import type { Fleet } from './fleet.js';
import type { Leadership } from './leadership.js';
import type { Publisher } from './publisher.js';
import type { RolloutScheduler } from './rollout-scheduler.js';

export interface RunOnceParts {
  leadership: Leadership;
  fleet: Fleet;
  scheduler: RolloutScheduler;
  publisher: Publisher;
  log: Logger;
  /** Period of the half-life re-signing (Fleet.startRefresh). */
  refreshMs?: number;
}

/**
 * The work that runs once per fleet, on the leader only (docs/scale.md, "Run-once work"):
 *
 * - the rollout scheduler, whose every step is fenced by the lease's epoch;
 * - desired-state republication and the half-life re-signing;
 * - writing what devices publish (reports, statuses, telemetry) to the database, fenced too.
 *
 * On election the new leader first heals what its predecessor may have left half done: it signs
 * what is due, republishes every stored document (a predecessor killed between a commit and its
 * publish left a batch stored but unsent), and re-reads every retained report and status (those
 * published while nobody wrote them, or queued by the predecessor and never flushed). Then the
 * scheduler resumes from the database, where every step left its state.
 */
export function runOnceOnLeader(p: RunOnceParts): { republish(): void; settled(): Promise<void> } {
  const log = moduleLogger(p.log, 'run-once');
  const { leadership, fleet, scheduler, publisher } = p;
  fleet.reports.writes = () => leadership.isLeader;
  fleet.store.fence = () => leadership.fence();
  // The election's work in flight, so that a shutdown waits for it before closing the broker.
  let work: Promise<unknown> = Promise.resolve();
  const track = (job: Promise<unknown>): void => {
    work = Promise.allSettled([work, job]);
  };
  const republish = (): void => {
    track(
      fleet
        .reconcile()
        .then(() => fleet.republishAll())
        .catch((err: unknown) => log.error({ err }, 'republication failed')),
    );
  };
  leadership.onChange((leader, epoch) => {
    if (leader) {
      fleet.startRefresh(p.refreshMs);
      republish();
      track(
        publisher
          .resubscribeReports()
          .catch((err: unknown) =>
            log.warn({ err }, 'could not re-read the retained reports; they arrive as devices publish'),
          ),
      );
      scheduler.start();
      log.info({ epoch }, 'scheduler, republication and report ingestion run here');
    } else {
      fleet.stopRefresh();
      void scheduler.stop();
    }
  });
  return {
    /** After the publisher (re)connects: only the leader republishes. */
    republish: () => {
      if (leadership.isLeader) republish();
    },
    /** Resolves when the republication and re-reading begun so far have finished. */
    settled: () => work.then(() => undefined),
  };
}
