import type { TelemetrySample } from '../../protocol/telemetry.js';

/** One point of a device's telemetry history: shares in percent, temperature in °C. */
export interface TelemetryPoint {
  /** Start of the bucket (or the sample's arrival for raw points), ISO 8601, the cloud's clock. */
  at: string;
  cpu: number;
  memory: number;
  /** The hottest sensor; null when the device has none. */
  temperature: number | null;
  /** Share of the models filesystem in use; null when the agent could not read it. */
  disk: number | null;
  /** Inferences and failed inferences counted in the bucket. */
  inferences: number;
  errors: number;
}

export type HistoryWindow = 'recent' | 'hour' | 'day';

interface Ring {
  stepMs: number;
  size: number;
  points: (TelemetryPoint & { n: number; bucket: number })[];
}

const WINDOWS: Record<Exclude<HistoryWindow, 'recent'>, { stepMs: number; size: number }> = {
  hour: { stepMs: 60_000, size: 60 },
  day: { stepMs: 15 * 60_000, size: 96 },
};
/** Raw samples kept for the fleet list's sparklines. */
export const RECENT_SAMPLES = 30;

export function pointOf(s: TelemetrySample, at: string): TelemetryPoint {
  const pct = (part: number, total: number): number => (total > 0 ? Math.round((part / total) * 1000) / 10 : 0);
  const temps = s.temperatures.map((t) => t.celsius);
  return {
    at,
    cpu: Math.round(s.cpu.loadPercent * 10) / 10,
    memory: pct(s.memory.usedBytes, s.memory.totalBytes),
    temperature: temps.length > 0 ? Math.max(...temps) : null,
    disk: s.disk ? pct(s.disk.totalBytes - s.disk.freeBytes, s.disk.totalBytes) : null,
    inferences: s.models.reduce((n, m) => n + m.count, 0),
    errors: s.models.reduce((n, m) => n + m.errors, 0),
  };
}

/**
 * A bounded, in-memory telemetry history per device: the last 30 samples as they came, the last
 * hour in 1-minute buckets and the last day in 15-minute buckets (averages; inference counts are
 * summed). The database keeps only the latest sample (telemetry.ts says why); this history serves
 * the web page's sparklines and charts and is lost on restart, by choice: a long-term record
 * belongs in a time-series store fed from the telemetry topic. Memory is bounded by
 * devices x (30 + 60 + 96) points.
 */
export class TelemetryHistory {
  private readonly devices = new Map<string, { recent: TelemetryPoint[]; hour: Ring; day: Ring }>();

  add(device: string, sample: TelemetrySample, at: string): void {
    let h = this.devices.get(device);
    if (!h) {
      h = { recent: [], hour: { ...WINDOWS.hour, points: [] }, day: { ...WINDOWS.day, points: [] } };
      this.devices.set(device, h);
    }
    const p = pointOf(sample, at);
    h.recent.push(p);
    if (h.recent.length > RECENT_SAMPLES) h.recent.shift();
    const t = Date.parse(at);
    addToRing(h.hour, p, t);
    addToRing(h.day, p, t);
  }

  /** Oldest first. The bucketed windows drop buckets older than the window at `now`. */
  points(device: string, window: HistoryWindow, now = Date.now()): TelemetryPoint[] {
    const h = this.devices.get(device);
    if (!h) return [];
    if (window === 'recent') return [...h.recent];
    const ring = h[window];
    const oldest = Math.floor(now / ring.stepMs) - ring.size + 1;
    return ring.points.filter((p) => p.bucket >= oldest).map(({ n: _n, bucket: _b, ...p }) => p);
  }

  forget(device: string): void {
    this.devices.delete(device);
  }
}

function addToRing(ring: Ring, p: TelemetryPoint, t: number): void {
  const bucket = Math.floor(t / ring.stepMs);
  const last = ring.points[ring.points.length - 1];
  if (last && last.bucket === bucket) {
    const n = last.n + 1;
    const avg = (a: number, b: number): number => Math.round(((a * last.n + b) / n) * 10) / 10;
    const avgNull = (a: number | null, b: number | null): number | null =>
      a === null ? b : b === null ? a : avg(a, b);
    last.cpu = avg(last.cpu, p.cpu);
    last.memory = avg(last.memory, p.memory);
    last.temperature = avgNull(last.temperature, p.temperature);
    last.disk = avgNull(last.disk, p.disk);
    last.inferences += p.inferences;
    last.errors += p.errors;
    last.n = n;
    return;
  }
  // A sample from an older bucket than the newest (reordered delivery) is dropped: averages are
  // only ever extended at the end, which keeps this O(1).
  if (last && bucket < last.bucket) return;
  ring.points.push({ ...p, at: new Date(bucket * ring.stepMs).toISOString(), n: 1, bucket });
  if (ring.points.length > ring.size) ring.points.shift();
}
