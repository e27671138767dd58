import { OutpostError } from '../../protocol/errors/index.js';

/**
 * Per-model concurrency limit. A request takes a slot before its body is read and gives it back
 * when its answer is written (or the client is gone); a model at its limit refuses at once with
 * 503 API_SATURATED instead of queueing, so a burst cannot pile up memory in the agent, and the
 * client retries after Retry-After seconds.
 */
export class ConcurrencyLimiter {
  private readonly inFlight = new Map<string, number>();

  constructor(
    private max: number,
    private readonly retryAfterSeconds = 1,
  ) {}

  /** A new limit (SIGHUP): requests already holding slots keep them; only new ones see it. */
  setMax(max: number): void {
    this.max = max;
  }

  /** Takes a slot or throws API_SATURATED; the returned function releases it (idempotent). */
  acquire(model: string): () => void {
    const n = this.inFlight.get(model) ?? 0;
    if (n >= this.max) {
      throw new OutpostError(
        'API_SATURATED',
        `model ${model} already runs ${n} requests (api.maxConcurrentPerModel is ${this.max}); retry after ${this.retryAfterSeconds} s`,
        { model, limit: this.max, retryAfterSeconds: this.retryAfterSeconds },
      );
    }
    this.inFlight.set(model, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(model) ?? 1) - 1;
      if (left <= 0) this.inFlight.delete(model);
      else this.inFlight.set(model, left);
    };
  }

  get retryAfter(): number {
    return this.retryAfterSeconds;
  }

  snapshot(): { model: string; inFlight: number }[] {
    return [...this.inFlight].map(([model, inFlight]) => ({ model, inFlight }));
  }

  total(): number {
    let t = 0;
    for (const n of this.inFlight.values()) t += n;
    return t;
  }
}
