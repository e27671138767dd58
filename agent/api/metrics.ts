/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format 0.0.4. The agent needs a handful of series, so it writes them itself rather
 * than pulling in a client library.
 */
import { preprocessedImages } from '../runtime/prepare.js';

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/**
 * The series key of a label set. Every request updates several series, so this runs ~5 times
 * per request: a loop over the (one or two) labels instead of JSON.stringify(entries.sort()),
 * which cost ~30 us per request on the 2-core bench machine (docs/performance.md). The key is
 * order-independent because the names are sorted; \u0000 and \u0001 cannot occur in label text
 * the agent writes.
 */
function keyOf(labels: Labels): string {
  const names = Object.keys(labels);
  // Callers write their labels in one order, so the names are nearly always sorted already;
  // sort() would allocate its work copy on every request (docs/performance.md, round 6).
  for (let i = 1; i < names.length; i++)
    if (names[i - 1]! > names[i]!) {
      names.sort();
      break;
    }
  let k = '';
  for (const n of names) k += `${n}\u0001${labels[n]}\u0000`;
  return k;
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isNaN(v) ? 'NaN' : String(v);
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  abstract samples(): string[];
  render(): string {
    return [
      `# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`,
      `# TYPE ${this.name} ${this.type}`,
      ...this.samples(),
    ].join('\n');
  }
}

export class Counter extends Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    name: string,
    help: string,
    /** Read at render time instead of inc() (counts another module keeps). */
    private readonly collect?: () => { labels: Labels; value: number }[],
  ) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = keyOf(labels);
    const cur = this.values.get(k);
    if (cur) cur.value += by;
    else this.values.set(k, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(keyOf(labels))?.value ?? 0;
  }
  samples(): string[] {
    const all = this.collect ? this.collect() : [...this.values.values()];
    return all.map((s) => `${this.name}${labelText(s.labels)} ${num(s.value)}`);
  }
}

export class Gauge extends Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    name: string,
    help: string,
    private readonly collect?: () => { labels: Labels; value: number }[],
  ) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, value: number): void {
    this.values.set(keyOf(labels), { labels, value });
  }
  add(labels: Labels, by: number): void {
    const k = keyOf(labels);
    const cur = this.values.get(k);
    this.values.set(k, { labels, value: (cur?.value ?? 0) + by });
  }
  samples(): string[] {
    const all = this.collect ? this.collect() : [...this.values.values()];
    return all.map((s) => `${this.name}${labelText(s.labels)} ${num(s.value)}`);
  }
}

/** Observations another part keeps itself: how many times each value was seen. */
export type Tally = { labels: Labels; seen: ReadonlyMap<number, number> }[];

export class Histogram extends Metric {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    readonly buckets: readonly number[],
    /** Read at render time instead of observe() (the runtime's batch sizes). */
    private readonly collect?: () => Tally,
  ) {
    super(name, help, 'histogram');
  }
  /** `times` observations of `value` (1 unless told). */
  observe(labels: Labels, value: number, times = 1): void {
    const k = keyOf(labels);
    let s = this.series.get(k);
    if (!s) this.series.set(k, (s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    // Buckets are cumulative in the exposition; store per-bucket counts and add up when rendering.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i !== -1) s.counts[i]! += times;
    s.sum += value * times;
    s.count += times;
  }
  samples(): string[] {
    const out: string[] = [];
    if (this.collect) {
      this.series.clear();
      for (const t of this.collect()) for (const [v, n] of t.seen) this.observe(t.labels, v, n);
    }
    for (const s of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((b, i) => {
        acc += s.counts[i]!;
        out.push(`${this.name}_bucket${labelText(s.labels, ['le', num(b)])} ${acc}`);
      });
      out.push(`${this.name}_bucket${labelText(s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The agent API's series. Route labels are route names (never raw paths: bounded cardinality). */
export class ApiMetrics {
  readonly requests = new Counter(
    'outpost_api_requests_total',
    'HTTP requests answered by the local API, by route and status.',
  );
  readonly requestSeconds = new Histogram(
    'outpost_api_request_duration_seconds',
    'Time from request to answer, by route.',
    LATENCY_BUCKETS,
  );
  readonly inferenceSeconds = new Histogram(
    'outpost_inference_duration_seconds',
    'Inference time (infer and predict, as the runtime runs them), by model.',
    LATENCY_BUCKETS,
  );
  readonly modelRequests = new Counter(
    'outpost_model_requests_total',
    'Inference requests per model and route (infer or predict).',
  );
  readonly modelErrors = new Counter(
    'outpost_model_errors_total',
    'Failed inference requests per model and error code.',
  );
  readonly rejected = new Counter(
    'outpost_api_rejected_total',
    'Requests refused before reaching a model, by error code (saturation, limits, bad input).',
  );
  readonly loads = new Counter(
    'outpost_model_loads_total',
    'Model version changes seen on the event stream, by model and event type.',
  );
  readonly preprocessed = new Counter(
    'outpost_preprocess_images_total',
    'Images and raw frames pre-processed for /predict, by path: native (the image addon) or sharp (the fallback).',
    () => Object.entries(preprocessedImages()).map(([path, value]) => ({ labels: { path }, value })),
  );
  readonly inflight: Gauge;
  readonly sseClients: Gauge;
  readonly batchSize: Histogram;
  private readonly extra: Metric[] = [];

  constructor(inflight: () => { labels: Labels; value: number }[], sse: () => number, batches: () => Tally = () => []) {
    this.inflight = new Gauge('outpost_model_inflight_requests', 'Requests a model runs right now.', inflight);
    this.batchSize = new Histogram(
      'outpost_model_batch_size',
      'Rows (first dimension) per run of a model with dynamic_batching, by model: _count is runs, _sum rows; size 1 is a request that ran alone.',
      BATCH_BUCKETS,
      batches,
    );
    this.sseClients = new Gauge('outpost_api_event_clients', 'Clients connected to /v1/events.', () => [
      { labels: {}, value: sse() },
    ]);
  }

  /** Lets other parts of the agent add series to the same page. */
  register(metric: Metric): void {
    this.extra.push(metric);
  }

  render(): string {
    const all: Metric[] = [
      this.requests,
      this.requestSeconds,
      this.inferenceSeconds,
      this.modelRequests,
      this.modelErrors,
      this.rejected,
      this.loads,
      this.preprocessed,
      this.inflight,
      this.sseClients,
      this.batchSize,
      ...this.extra,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
