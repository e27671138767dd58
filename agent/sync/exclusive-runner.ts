/**
 * Runs one apply at a time.
 *
 * Invariants:
 * - At most one task runs; a task is an async function that receives an AbortSignal.
 * - `run(task)` while a task runs aborts the running one (a newer desired state makes the older
 *   apply pointless) and queues the new task; only the newest queued task survives, so a burst of
 *   updates costs one extra apply, not one per update.
 * - A task must leave the system consistent when aborted (the store's journal guarantees that for
 *   installs); the runner only waits for it to settle before starting the next.
 */
export class ExclusiveRunner {
  private running: { controller: AbortController; done: Promise<void> } | null = null;
  private next: ((signal: AbortSignal) => Promise<void>) | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly onError: (err: unknown) => void) {}

  run(task: (signal: AbortSignal) => Promise<void>, opts: { preempt?: boolean } = {}): void {
    this.next = task;
    if (this.running) {
      if (opts.preempt !== false) this.running.controller.abort(new Error('superseded'));
      return;
    }
    this.pump();
  }

  get busy(): boolean {
    return this.running !== null || this.next !== null;
  }

  /** Resolves once nothing runs and nothing is queued. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Aborts the running task, drops the queued one and waits for the running one to settle. */
  async stop(): Promise<void> {
    this.next = null;
    this.running?.controller.abort(new Error('stopping'));
    await this.running?.done;
  }

  private pump(): void {
    const task = this.next;
    this.next = null;
    if (!task) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    const controller = new AbortController();
    const done = (async () => {
      try {
        await task(controller.signal);
      } catch (err) {
        if (!controller.signal.aborted) this.onError(err);
      }
    })();
    this.running = { controller, done };
    void done.then(() => {
      this.running = null;
      this.pump();
    });
  }
}
