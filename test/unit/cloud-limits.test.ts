import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FailureLimiter, fingerprint } from '../../cloud-broker/auth/failure-limiter.js';
import { guardPackets, PublishBudget } from '../../cloud-broker/broker/device-limits.js';
import { DEFAULT_CLOUD_LIMITS, envName, limitKeys, resolveCloudLimits } from '../../cloud-broker/limits.js';
import { MemoryBudget } from '../../agent/api/admission.js';
import type { OutpostError } from '../../protocol/errors/index.js';

describe('cloud limits', () => {
  it('takes defaults, then environment variables, then the caller, and names a bad value', () => {
    const l = resolveCloudLimits(
      { auth: { perSource: 3 } },
      { OUTPOST_CLOUD_AUTH_PER_SOURCE: '7', OUTPOST_CLOUD_BROKER_MAX_PAYLOAD_TELEMETRY: '1000' },
    );
    expect(l.auth.perSource).toBe(3);
    expect(l.broker.maxPayload.telemetry).toBe(1000);
    expect(l.http).toEqual(DEFAULT_CLOUD_LIMITS.http);
    expect(() => resolveCloudLimits({}, { OUTPOST_CLOUD_HTTP_MAX_CONNECTIONS: 'lots' })).toThrow(
      /OUTPOST_CLOUD_HTTP_MAX_CONNECTIONS must be a non-negative integer/,
    );
    expect(() => resolveCloudLimits({ http: { nope: 1 } as never })).toThrow(/unknown cloud limit http.nope/);
  });

  it('are all documented in docs/configuration.md with their variable and default', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const [key, value] of limitKeys()) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${key}\` |`));
      expect(row, key).toBeDefined();
      expect(row).toContain(`\`${envName(key)}\``);
      expect(row).toContain(`\`${value}\``);
    }
  });
});

describe('FailureLimiter', () => {
  it('blocks a key at its limit until the window ends, and says so once', () => {
    let now = 0;
    const l = new FailureLimiter({ perSource: 3, perCredential: 100, windowMs: 10_000 }, () => now);
    const tripped = [1, 2, 3].map(() => l.fail('10.0.0.1', 'tok').source);
    expect(tripped).toEqual([false, false, true]);
    expect(l.check('10.0.0.1', 'other')).toEqual({ by: 'source', retryAfterSeconds: 10 });
    expect(l.check('10.0.0.2', 'tok')).toBeNull();
    now = 9_500;
    expect(l.check('10.0.0.1', undefined)?.retryAfterSeconds).toBe(1);
    now = 10_000;
    expect(l.check('10.0.0.1', undefined)).toBeNull();
  });

  it('holds at most maxKeys keys per table whatever the flood of distinct sources', () => {
    const l = new FailureLimiter({ maxKeys: 500 });
    for (let i = 0; i < 50_000; i++) l.fail(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, `token-${i}`);
    expect(l.size()).toEqual({ sources: 500, credentials: 500 });
  });

  it('keys credentials by a short fingerprint, never the secret', () => {
    expect(fingerprint('op_secret')).toMatch(/^[0-9a-f]{12}$/);
    expect(fingerprint('op_secret')).not.toContain('secret');
  });
});

describe('PublishBudget', () => {
  const limits = { ...DEFAULT_CLOUD_LIMITS.broker, publishRate: 10, publishBurst: 5, maxInflight: 3 };

  it('refuses a payload over its kind cap, and an unknown kind entirely', () => {
    const b = new PublishBudget(limits);
    expect(b.admit('status', limits.maxPayload.status + 1)?.reason).toBe('payload');
    expect(b.admit('desired' as never, 1)?.reason).toBe('payload');
    expect(b.admit('status', limits.maxPayload.status)).toBeNull();
  });

  it('lets a burst through, then refills at the rate; bounds publishes in flight', () => {
    let now = 0;
    const b = new PublishBudget(limits, () => now);
    const first = Array.from({ length: 4 }, () => b.admit('telemetry', 10)?.reason ?? 'ok');
    expect(first).toEqual(['ok', 'ok', 'ok', 'inflight']);
    b.done();
    b.done();
    b.done();
    expect(b.admit('telemetry', 10)).toBeNull();
    expect(b.admit('telemetry', 10)).toBeNull();
    expect(b.admit('telemetry', 10)?.reason).toBe('rate');
    now = 100; // one token back at 10/s
    b.done();
    b.done();
    expect(b.admit('telemetry', 10)).toBeNull();
    expect(b.admit('telemetry', 10)?.reason).toBe('rate');
  });
});

describe('guardPackets', () => {
  const feed = async (bytes: number[][], max: number) => {
    const conn = new PassThrough();
    let announced = -1;
    const guard = guardPackets(conn, max, (n) => (announced = n));
    const out: Buffer[] = [];
    guard.on('data', (c: Buffer) => out.push(c));
    guard.on('error', () => undefined);
    for (const b of bytes) conn.write(Buffer.from(b));
    await new Promise((r) => setImmediate(r));
    return { announced, passed: Buffer.concat(out).length, destroyed: conn.destroyed };
  };

  it('passes packets up to the cap, split anywhere across chunks', async () => {
    // PINGREQ (c0 00), then PUBLISH with Remaining Length 200 (varint c8 01) split mid-length.
    const body = Array.from({ length: 200 }, () => 0x61);
    const r = await feed([[0xc0, 0x00, 0x30, 0xc8], [0x01, ...body.slice(0, 50)], body.slice(50)], 200);
    expect(r).toEqual({ announced: -1, passed: 205, destroyed: false });
  });

  it('cuts the connection when a length over the cap is announced, before its body', async () => {
    const r = await feed([[0x30, 0xc9, 0x01]], 200);
    expect(r.announced).toBe(201);
    expect(r.destroyed).toBe(true);
  });
});

describe('MemoryBudget', () => {
  it('reserves until full, refuses with a retry hint, and frees on release (once)', () => {
    const m = new MemoryBudget(100);
    const a = m.reserve(60, 'a');
    const err = (() => {
      try {
        m.reserve(50, 'b');
      } catch (e) {
        return e as OutpostError;
      }
    })();
    expect(err?.code).toBe('API_MEMORY_BUSY');
    expect(err?.details?.retryAfterSeconds).toBe(1);
    expect(() => m.reserve(101, 'c')).toThrow(expect.objectContaining({ code: 'API_IMAGE_TOO_LARGE' }));
    a();
    a();
    expect(m.inUse()).toBe(0);
    m.reserve(100, 'd');
  });
});
