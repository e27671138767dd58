import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from '../../agent/api/limiter.js';
import { Counter, Histogram } from '../../agent/api/metrics.js';
import { resolveModel, resolveVersion } from '../../agent/api/names.js';
import { imageKind } from '../../agent/api/routes/predict.js';
import type { ModelEntry } from '../../agent/api/types.js';
import { parseSse } from '../../agent/client/sse.js';
import type { OutpostError } from '../../protocol/errors/index.js';

const entry = (id: string, loaded: number[] = [1]): ModelEntry => ({
  id,
  activeVersion: loaded.at(-1) ?? null,
  loadedVersions: loaded,
  state: 'ready',
});

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as OutpostError).code;
  }
  return 'none';
}

describe('model names and aliases', () => {
  const models = [entry('acme/colors', [1, 2]), entry('acme/detect'), entry('zed/detect')];
  it('resolves owner/name, a unique alias, and refuses ambiguous or unknown names', () => {
    expect(resolveModel(models, 'acme/colors').id).toBe('acme/colors');
    expect(resolveModel(models, 'colors').id).toBe('acme/colors');
    expect(code(() => resolveModel(models, 'detect'))).toBe('API_MODEL_AMBIGUOUS');
    expect(code(() => resolveModel(models, 'acme/nope'))).toBe('API_MODEL_NOT_FOUND');
    expect(code(() => resolveModel(models, 'nope'))).toBe('API_MODEL_NOT_FOUND');
  });
  it('accepts only loaded versions as positive integers', () => {
    expect(resolveVersion(models[0]!, '2')).toBe(2);
    expect(resolveVersion(models[0]!, undefined)).toBeUndefined();
    for (const v of ['3', '0', '-1', '1.0', 'abc', '01', '9'.repeat(30)])
      expect(code(() => resolveVersion(models[0]!, v))).toBe('API_VERSION_NOT_FOUND');
  });
});

describe('concurrency limiter', () => {
  it('refuses past the limit and frees slots once, per model', () => {
    const g = new ConcurrencyLimiter(2);
    const a = g.acquire('m');
    const b = g.acquire('m');
    expect(code(() => g.acquire('m'))).toBe('API_SATURATED');
    g.acquire('other')();
    a();
    a(); // idempotent: a double release must not open a third slot
    const c = g.acquire('m');
    expect(code(() => g.acquire('m'))).toBe('API_SATURATED');
    b();
    c();
    expect(g.total()).toBe(0);
  });
});

describe('Prometheus exposition', () => {
  it('renders counters with escaped labels and cumulative histogram buckets', () => {
    const c = new Counter('x_total', 'help');
    c.inc({ model: 'a"b\\c' });
    c.inc({ model: 'a"b\\c' }, 2);
    expect(c.render()).toContain('x_total{model="a\\"b\\\\c"} 3');
    const h = new Histogram('lat_seconds', 'help', [0.1, 1]);
    for (const v of [0.05, 0.5, 0.5, 5]) h.observe({ r: 'i' }, v);
    const text = h.render();
    expect(text).toContain('lat_seconds_bucket{r="i",le="0.1"} 1');
    expect(text).toContain('lat_seconds_bucket{r="i",le="1"} 3');
    expect(text).toContain('lat_seconds_bucket{r="i",le="+Inf"} 4');
    expect(text).toContain('lat_seconds_sum{r="i"} 6.05');
    expect(text).toContain('lat_seconds_count{r="i"} 4');
  });
});

describe('SSE parsing', () => {
  it('splits messages across chunk borders, joins data lines, skips comments', async () => {
    const stream = Readable.from([
      'retry: 2000\n: hi\n\nid: 1\nevent: activated\nda',
      'ta: {"a":\ndata: 1}\n\n',
      'event: failed\r\ndata: x\r\n\r\n',
    ]);
    const got = [];
    for await (const m of parseSse(stream)) got.push(m);
    expect(got).toEqual([
      { id: '1', event: 'activated', data: '{"a":\n1}' },
      { event: 'failed', data: 'x' },
    ]);
  });
});

describe('image sniffing', () => {
  it('knows JPEG and PNG by their first bytes only', () => {
    expect(imageKind(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('jpeg');
    expect(imageKind(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe('png');
    expect(imageKind(Buffer.from('GIF89a'))).toBeUndefined();
    expect(imageKind(new Uint8Array(0))).toBeUndefined();
  });
});
