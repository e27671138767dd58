/**
 * Exponential back-off with full jitter (the delay is uniform in [0, min(max, base * 2^n)]),
 * so that a fleet that lost its broker does not come back in lock-step. mqtt.js alone reconnects
 * every second with no jitter, which turns a broker restart into a thundering herd.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.max(this.minMs / 2, Math.round(this.random() * ceiling));
  }

  reset(): void {
    this.attempt = 0;
  }
}
