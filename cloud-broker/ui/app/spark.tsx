import type { TelemetryPoint } from './types';

type Metric = 'cpu' | 'memory' | 'temperature' | 'disk';

export const METRICS: { key: Metric; label: string; short: string; unit: string; max?: number }[] = [
  { key: 'cpu', label: 'CPU', short: 'CPU', unit: '%', max: 100 },
  { key: 'memory', label: 'Memory', short: 'Mem', unit: '%', max: 100 },
  { key: 'temperature', label: 'Temperature', short: 'Temp', unit: '°C' },
  { key: 'disk', label: 'Disk', short: 'Disk', unit: '%', max: 100 },
];

function values(points: TelemetryPoint[], key: Metric): number[] {
  return points.map((p) => p[key]).filter((v): v is number => typeof v === 'number');
}

function path(vs: number[], w: number, h: number, lo: number, hi: number): string {
  const span = hi - lo || 1;
  const step = vs.length > 1 ? w / (vs.length - 1) : 0;
  return vs
    .map((v, i) => `${i === 0 ? 'M' : 'L'}${(i * step).toFixed(1)},${(h - ((v - lo) / span) * h).toFixed(1)}`)
    .join(' ');
}

/** A tiny trend line with its last value; the label says the same for screen readers. */
export function Sparkline({ points, metric }: { points: TelemetryPoint[]; metric: (typeof METRICS)[number] }) {
  const vs = values(points, metric.key);
  const last = vs[vs.length - 1];
  if (last === undefined)
    return (
      <span class="spark" title={`${metric.label}: not reported`}>
        <span class="spark-name">{metric.short}</span>
        <span class="spark-value muted">–</span>
      </span>
    );
  const lo = metric.max ? 0 : Math.min(...vs) - 1;
  const hi = metric.max ?? Math.max(...vs) + 1;
  const label = `${metric.label} ${Math.round(last)}${metric.unit}, last ${vs.length} samples from ${Math.round(Math.min(...vs))} to ${Math.round(Math.max(...vs))}`;
  return (
    <span class="spark" title={label}>
      <span class="spark-name">{metric.short}</span>
      <svg width="56" height="18" viewBox="0 0 56 18" role="img" aria-label={label}>
        {vs.length === 1 ? <circle cx="54" cy={18 - ((last - lo) / (hi - lo || 1)) * 18} r="1.8" /> : null}
        <path d={path(vs, 56, 18, lo, hi)} />
      </svg>
      <span class="spark-value">
        {Math.round(last)}
        {metric.unit}
      </span>
    </span>
  );
}

/** A line chart with min/max and first/last time labels, for the device view. */
export function Chart({ points, metric }: { points: TelemetryPoint[]; metric: (typeof METRICS)[number] }) {
  const withValue = points.filter((p) => typeof p[metric.key] === 'number');
  const vs = values(withValue, metric.key);
  const title = `${metric.label} (${metric.unit})`;
  if (vs.length === 0)
    return (
      <figure class="chart">
        <figcaption>{title}</figcaption>
        <p class="muted">No samples in this window.</p>
      </figure>
    );
  const lo = metric.max ? 0 : Math.floor(Math.min(...vs) - 2);
  const hi = metric.max ?? Math.ceil(Math.max(...vs) + 2);
  const W = 300;
  const H = 80;
  const t0 = new Date(withValue[0].at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const t1 = new Date(withValue[withValue.length - 1].at).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
  });
  const summary = `${metric.label}: ${vs.length} points from ${t0} to ${t1}, lowest ${Math.round(Math.min(...vs))}${metric.unit}, highest ${Math.round(Math.max(...vs))}${metric.unit}, last ${Math.round(vs[vs.length - 1])}${metric.unit}`;
  return (
    <figure class="chart">
      <figcaption>
        {title} <span class="chart-last">{Math.round(vs[vs.length - 1])}</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={summary}>
        <line x1="0" y1={H} x2={W} y2={H} class="axis" />
        <line x1="0" y1="0" x2={W} y2="0" class="grid" />
        {vs.length === 1 ? <circle cx={W - 3} cy={H - ((vs[0] - lo) / (hi - lo || 1)) * H} r="3" /> : null}
        <path d={path(vs, W, H, lo, hi)} vector-effect="non-scaling-stroke" />
      </svg>
      <div class="chart-scale">
        <span>
          {t0} · {lo}–{hi}
          {metric.unit}
        </span>
        <span>{t1}</span>
      </div>
    </figure>
  );
}
