import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../agent/api/body.js';

/**
 * The body-buffer pool (agent/api/body.ts): buffers of every request in flight come back for
 * reuse (16 concurrent requests no longer reallocate half of theirs), within the byte bound.
 */
describe('BufferPool', () => {
  it('reuses all 16 buffers of 16 requests in flight, in power-of-two classes', () => {
    const pool = new BufferPool();
    const first = Array.from({ length: 16 }, () => pool.take(200 * 1024));
    expect(first.every((b) => b.byteLength === 256 * 1024)).toBe(true);
    for (const b of first) pool.give(b);
    expect(pool.retainedBytes).toBe(16 * 256 * 1024);
    const again = Array.from({ length: 16 }, () => pool.take(256 * 1024));
    expect(new Set([...first, ...again]).size).toBe(16);
    expect(pool.retainedBytes).toBe(0);
  });

  it('keeps no more than its byte bound, and ignores buffers of no class', () => {
    const pool = new BufferPool(1024 * 1024);
    for (let i = 0; i < 10; i++) pool.give(new ArrayBuffer(256 * 1024));
    expect(pool.retainedBytes).toBe(1024 * 1024);
    pool.give(new ArrayBuffer(100 * 1024));
    expect(pool.retainedBytes).toBe(1024 * 1024);
  });
});
