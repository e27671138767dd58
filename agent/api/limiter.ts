import { OutpostError } from '../../protocol/errors/index.js';
import type { ModelDescription } from './types.js';

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

  /**
   * Takes a slot or throws API_SATURATED; the returned function releases it (idempotent).
   * `atLeast` raises the limit for this model above the configured one (a batching model's: limitFor).
   */
  acquire(model: string, atLeast = 0): () => void {
    const n = this.inFlight.get(model) ?? 0;
    const max = Math.max(this.max, atLeast);
    if (n >= max) {
      const why =
        max > this.max
          ? `2 x its max_batch_size, above api.maxConcurrentPerModel ${this.max}`
          : `api.maxConcurrentPerModel`;
      throw new OutpostError(
        'API_SATURATED',
        `model ${model} already runs ${n} requests (its limit is ${max}: ${why}); retry after ${this.retryAfterSeconds} s`,
        { model, limit: max, retryAfterSeconds: this.retryAfterSeconds },
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

/**
 * The least concurrency limit of a model on the socket. A batching model (dynamic_batching) is
 * given room for two full batches, whatever api.maxConcurrentPerModel says: its worker keeps one
 * run computing and the next one ready, and a batch can only take the requests the socket let
 * in, so with the default of 4 a max_batch_size of 8 could never fill (docs/configuration.md).
 * onnx.maxQueuedPerModel still bounds the requests waiting for a run, and api.maxBytesInFlight
 * their memory.
 */
export function limitFor(model: Pick<ModelDescription, 'batches'>): number {
  return model.batches ? 2 * model.batches.maxBatchSize : 0;
}
