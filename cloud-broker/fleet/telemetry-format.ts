import type { LatestTelemetry } from './telemetry.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const size = (n: number): string => (n >= GiB ? `${(n / GiB).toFixed(1)} GiB` : `${(n / MiB).toFixed(0)} MiB`);
const ms = (n: number): string => `${n < 10 ? n.toFixed(2) : n.toFixed(0)} ms`;

/** The human lines of `outpost device show` for the latest telemetry sample. */
export function formatTelemetry(t: LatestTelemetry | null): string[] {
  if (!t) return ['telemetry: none received yet (the agent sends one every telemetry.intervalSeconds while connected)'];
  const s = t.sample;
  const lines = [
    `telemetry at ${s.at} (received ${t.receivedAt}, agent up ${Math.round(s.uptimeSeconds)} s):`,
    `  cpu ${s.cpu.loadPercent.toFixed(1)}% of ${s.cpu.cores} cores (load1 ${s.cpu.load1.toFixed(2)})  memory ${size(s.memory.usedBytes)} used, ${size(s.memory.availableBytes)} available of ${size(s.memory.totalBytes)}`,
    `  agent process rss ${size(s.process.rssBytes)}, heap ${size(s.process.heapUsedBytes)}, cpu ${s.process.cpuPercent.toFixed(1)}%`,
    s.disk
      ? `  models disk ${s.disk.path}: ${size(s.disk.freeBytes)} free of ${size(s.disk.totalBytes)}`
      : '  models disk: unreadable',
    s.temperatures.length
      ? `  temperatures: ${s.temperatures.map((x) => `${x.sensor} ${x.celsius.toFixed(1)} C`).join(', ')}`
      : '  temperatures: no sensors found',
  ];
  if (s.models.length === 0) lines.push(`  inferences: none since the agent started`);
  for (const m of s.models) {
    const lat = m.latencyMs
      ? `; latency mean ${ms(m.latencyMs.mean)} p50 ${ms(m.latencyMs.p50)} p95 ${ms(m.latencyMs.p95)} max ${ms(m.latencyMs.max)}`
      : '';
    lines.push(
      `  ${m.model}@${m.version}: ${m.count} inferences (${m.errors} failed) in the last ${Math.round(s.intervalSeconds)} s, ${m.total} total (${m.totalErrors} failed)${lat}`,
    );
  }
  return lines;
}
