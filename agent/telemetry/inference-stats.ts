import type { ModelTelemetry } from '../../protocol/telemetry.js';

/**
 * Per-model inference counters fed by the runtime on every inference. Recording is O(1) and
 * allocation-free in the steady state, because it runs on the inference path: latencies go into
 * a fixed-size reservoir per model (uniform sample of the interval), so a model serving 10,000
 * requests a minute costs the same memory as one serving ten.
 */
const RESERVOIR = 1024;

interface Entry {
  model: string;
  version: number;
  count: number;
  errors: number;
  total: number;
  totalErrors: number;
  okCount: number;
  sum: number;
  max: number;
  samples: Float64Array;
}

export class InferenceStats {
  private readonly entries = new Map<string, Entry>();

  /** Called by the runtime after each inference (ok=false when it failed). */
  recordInference(model: string, version: number, ms: number, ok: boolean): void {
    const key = `${model}@${version}`;
    let e = this.entries.get(key);
    if (!e) {
      e = {
        model,
        version,
        count: 0,
        errors: 0,
        total: 0,
        totalErrors: 0,
        okCount: 0,
        sum: 0,
        max: 0,
        samples: new Float64Array(RESERVOIR),
      };
      this.entries.set(key, e);
    }
    e.count++;
    e.total++;
    if (!ok) {
      e.errors++;
      e.totalErrors++;
      return;
    }
    const v = Number.isFinite(ms) && ms >= 0 ? ms : 0;
    e.sum += v;
    if (v > e.max) e.max = v;
    // Reservoir sampling (Vitter's algorithm R): each of the interval's values is kept with equal probability.
    if (e.okCount < RESERVOIR) e.samples[e.okCount] = v;
    else {
      const j = Math.floor(Math.random() * (e.okCount + 1));
      if (j < RESERVOIR) e.samples[j] = v;
    }
    e.okCount++;
  }

  /**
   * The interval's figures for every model seen since start, then a reset of the interval
   * counters (totals keep running). Models with no traffic in the interval report count 0.
   */
  drain(): ModelTelemetry[] {
    const out: ModelTelemetry[] = [];
    for (const e of this.entries.values()) {
      let latencyMs: ModelTelemetry['latencyMs'] = null;
      if (e.okCount > 0) {
        const kept = e.samples.slice(0, Math.min(e.okCount, RESERVOIR)).sort();
        const at = (q: number): number => kept[Math.min(kept.length - 1, Math.floor(q * kept.length))];
        latencyMs = { mean: round(e.sum / e.okCount), p50: round(at(0.5)), p95: round(at(0.95)), max: round(e.max) };
      }
      out.push({
        model: e.model,
        version: e.version,
        count: e.count,
        errors: e.errors,
        total: e.total,
        totalErrors: e.totalErrors,
        latencyMs,
      });
      e.count = 0;
      e.errors = 0;
      e.okCount = 0;
      e.sum = 0;
      e.max = 0;
    }
    return out;
  }

  /** Forgets a model version (after it was removed from the device). */
  forget(model: string, version: number): void {
    this.entries.delete(`${model}@${version}`);
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
