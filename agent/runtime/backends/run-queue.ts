import { OutpostError } from '../../../protocol/errors/index.js';

/**
 * The in-flight queue in front of one session: at most `parallel` runs are handed to the engine
 * at once, at most `maxQueued` more wait here, and the next one is refused at once with
 * RUNTIME_QUEUE_FULL (503, Retry-After) instead of growing the queue without bound.
 *
 * Why a queue at all: an onnxruntime session computes one run at a time per thread that calls
 * it, so handing it 16 runs at once only moves the waiting into the engine (or a worker's message
 * port), where nothing bounds it, and where every waiting input holds its memory. Here waiting
 * requests are counted, and what the session can actually use is what it gets.
 */
export class RunQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly what: string,
    private readonly parallel: number,
    private readonly maxQueued: number,
    private readonly retryAfterSeconds = 1,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.parallel) {
      if (this.waiting.length >= this.maxQueued)
        throw queueFull(this.what, this.running, this.waiting.length, this.maxQueued, this.retryAfterSeconds);
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter: `running` stays the same.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  get depth(): { running: number; queued: number } {
    return { running: this.running, queued: this.waiting.length };
  }
}

/** The refusal of a full queue; the batching queue (batch-queue.ts) answers with the same. */
export function queueFull(
  what: string,
  running: number,
  queued: number,
  limit: number,
  retryAfterSeconds: number,
): OutpostError {
  return new OutpostError(
    'RUNTIME_QUEUE_FULL',
    `${what} already has ${running} runs in progress and ${queued} waiting (onnx.maxQueuedPerModel is ${limit}); retry after ${retryAfterSeconds} s`,
    { running, queued, limit, retryAfterSeconds },
  );
}
