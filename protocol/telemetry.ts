import { OutpostError } from './errors/index.js';

/**
 * The telemetry document a device publishes on `.../devices/{id}/telemetry` every
 * `telemetry.intervalSeconds` and on request. Counters under `models` cover the interval since
 * the previous sample (`count`, `errors`, latencies) plus the running `total` since the agent
 * started, so a lost message loses detail but never the totals.
 */
export interface TelemetrySample {
  v: 1;
  deviceId: string;
  /** ISO 8601 time the sample was taken. */
  at: string;
  /** Seconds covered by the per-interval counters (time since the previous sample). */
  intervalSeconds: number;
  /** Seconds since the agent process started. */
  uptimeSeconds: number;
  /**
   * ISO 8601 time the agent process started (optional: older agents omit it); exact where
   * `at - uptimeSeconds` is rounded, so the cloud can tell a restart from a late sample.
   */
  startedAt?: string;
  cpu: {
    /** Busy share of all cores over the interval, 0..100. */
    loadPercent: number;
    /** The kernel's 1-minute load average. */
    load1: number;
    cores: number;
  };
  memory: { totalBytes: number; availableBytes: number; usedBytes: number };
  /** The agent process itself. */
  process: { rssBytes: number; heapUsedBytes: number; cpuPercent: number };
  /** Every temperature sensor found: Jetson thermal zones (CPU-therm, GPU-therm...) and hwmon. */
  temperatures: TemperatureReading[];
  /** The filesystem that holds the models directory; null when it cannot be read. */
  disk: { path: string; totalBytes: number; freeBytes: number } | null;
  models: ModelTelemetry[];
}

export interface TemperatureReading {
  /** The sensor's own name: thermal zone type (e.g. "GPU-therm") or "hwmon name/label". */
  sensor: string;
  celsius: number;
}

export interface ModelTelemetry {
  model: string;
  version: number;
  /** Inferences in this interval, and how many failed. */
  count: number;
  errors: number;
  /** Since the agent started. */
  total: number;
  totalErrors: number;
  /** Latency of this interval's successful inferences; null when there were none. */
  latencyMs: { mean: number; p50: number; p95: number; max: number } | null;
}

type Obj = Record<string, unknown>;

function bad(key: string, what: string, value: unknown): OutpostError {
  return new OutpostError(
    'BAD_REQUEST',
    `telemetry ${key} must be ${what}, got ${JSON.stringify(value)?.slice(0, 60)}`,
    { key },
  );
}
function obj(v: unknown, key: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(key, 'an object', v);
  return v as Obj;
}
function num(o: Obj, k: string, prefix: string, min = 0): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw bad(prefix + k, `a number >= ${min}`, v);
  return v;
}
function str(o: Obj, k: string, prefix: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v === '' || v.length > 256) throw bad(prefix + k, 'a non-empty string', v);
  return v;
}
function list(o: Obj, k: string, max: number): unknown[] {
  const v = o[k];
  if (!Array.isArray(v) || v.length > max) throw bad(k, `a list of at most ${max}`, v);
  return v;
}

/** Validates a telemetry document received over MQTT (the cloud's side of the boundary). */
export function parseTelemetrySample(value: unknown): TelemetrySample {
  const o = obj(value, 'document');
  if (o.v !== 1) throw bad('v', '1', o.v);
  const at = str(o, 'at', '');
  if (Number.isNaN(Date.parse(at))) throw bad('at', 'an ISO 8601 time', at);
  const cpu = obj(o.cpu, 'cpu');
  const memory = obj(o.memory, 'memory');
  const proc = obj(o.process, 'process');
  const disk = o.disk === null ? null : obj(o.disk, 'disk');
  let startedAt: string | undefined;
  if (o.startedAt !== undefined) {
    startedAt = str(o, 'startedAt', '');
    if (Number.isNaN(Date.parse(startedAt))) throw bad('startedAt', 'an ISO 8601 time', startedAt);
  }
  return {
    v: 1,
    deviceId: str(o, 'deviceId', ''),
    ...(startedAt !== undefined ? { startedAt } : {}),
    at,
    intervalSeconds: num(o, 'intervalSeconds', ''),
    uptimeSeconds: num(o, 'uptimeSeconds', ''),
    cpu: {
      loadPercent: num(cpu, 'loadPercent', 'cpu.'),
      load1: num(cpu, 'load1', 'cpu.'),
      cores: num(cpu, 'cores', 'cpu.', 1),
    },
    memory: {
      totalBytes: num(memory, 'totalBytes', 'memory.'),
      availableBytes: num(memory, 'availableBytes', 'memory.'),
      usedBytes: num(memory, 'usedBytes', 'memory.'),
    },
    process: {
      rssBytes: num(proc, 'rssBytes', 'process.'),
      heapUsedBytes: num(proc, 'heapUsedBytes', 'process.'),
      cpuPercent: num(proc, 'cpuPercent', 'process.'),
    },
    temperatures: list(o, 'temperatures', 256).map((t, i) => {
      const r = obj(t, `temperatures[${i}]`);
      return {
        sensor: str(r, 'sensor', `temperatures[${i}].`),
        celsius: num(r, 'celsius', `temperatures[${i}].`, -273),
      };
    }),
    disk: disk && {
      path: str(disk, 'path', 'disk.'),
      totalBytes: num(disk, 'totalBytes', 'disk.'),
      freeBytes: num(disk, 'freeBytes', 'disk.'),
    },
    models: list(o, 'models', 10_000).map((m, i) => {
      const r = obj(m, `models[${i}]`);
      const p = `models[${i}].`;
      const l = r.latencyMs === null ? null : obj(r.latencyMs, `${p}latencyMs`);
      return {
        model: str(r, 'model', p),
        version: num(r, 'version', p, 1),
        count: num(r, 'count', p),
        errors: num(r, 'errors', p),
        total: num(r, 'total', p),
        totalErrors: num(r, 'totalErrors', p),
        latencyMs: l && {
          mean: num(l, 'mean', `${p}latencyMs.`),
          p50: num(l, 'p50', `${p}latencyMs.`),
          p95: num(l, 'p95', `${p}latencyMs.`),
          max: num(l, 'max', `${p}latencyMs.`),
        },
      };
    }),
  };
}
