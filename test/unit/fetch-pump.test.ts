import { describe, expect, it } from 'vitest';
import type { Body, BodyHandler } from '../../agent/fetch/http.js';
import { pump } from '../../agent/fetch/pump.js';

/** A body driven by hand: the test decides when chunks, the end or an error arrive. */
function handBody(): Body & { h: () => BodyHandler; paused: () => boolean } {
  let handler: BodyHandler | null = null;
  let paused = false;
  return {
    start: (h) => void (handler = h),
    pause: () => void (paused = true),
    resume: () => void (paused = false),
    h: () => handler!,
    paused: () => paused,
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('pump', () => {
  it('writes every chunk that arrived before reporting a cut', async () => {
    const body = handBody();
    const written: string[] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const p = pump(body, {
      accept: () => undefined,
      write: async (c) => {
        await slow;
        written.push(c.toString());
      },
    });
    body.h().data(Buffer.from('a'));
    body.h().data(Buffer.from('b'));
    body.h().error(new Error('aborted'));
    let settled = false;
    p.catch(() => undefined).finally(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    release();
    await expect(p).rejects.toThrow('aborted');
    expect(written).toEqual(['a', 'b']);
  });

  it('stops at once when accept refuses a chunk, writing nothing after it', async () => {
    const body = handBody();
    const written: string[] = [];
    const p = pump(body, {
      accept: (c) => {
        if (c.toString() === 'x') throw new Error('too long');
      },
      write: async (c) => void written.push(c.toString()),
    });
    body.h().data(Buffer.from('a'));
    body.h().data(Buffer.from('x'));
    body.h().data(Buffer.from('b'));
    await expect(p).rejects.toThrow('too long');
    expect(written).not.toContain('x');
    expect(written).not.toContain('b');
  });

  it('pauses the body above the high-water mark and resumes when drained', async () => {
    const body = handBody();
    let release!: () => void;
    let drained = new Promise<void>((r) => (release = r));
    const p = pump(body, { accept: () => undefined, write: () => drained }, 10);
    for (let i = 0; i < 4; i++) body.h().data(Buffer.alloc(4));
    expect(body.paused()).toBe(true);
    drained = Promise.resolve();
    release();
    await tick();
    await tick();
    expect(body.paused()).toBe(false);
    body.h().end();
    await expect(p).resolves.toBeUndefined();
  });

  it('hands a writev sink batches of at least `batch` bytes, in order, and the tail at the end', async () => {
    const body = handBody();
    const calls: string[][] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const p = pump(
      body,
      {
        accept: () => undefined,
        write: async () => {
          throw new Error('write must not be used when writev is given');
        },
        writev: async (cs) => {
          calls.push(cs.map((c) => c.toString()));
          if (calls.length === 1) await slow;
        },
      },
      1 << 20,
      2,
    );
    body.h().data(Buffer.from('a'));
    await tick();
    expect(calls).toEqual([]);
    body.h().data(Buffer.from('b'));
    body.h().data(Buffer.from('c'));
    body.h().end();
    release();
    await expect(p).resolves.toBeUndefined();
    expect(calls).toEqual([['a', 'b'], ['c']]);
  });

  it('writes a tail smaller than `batch` before reporting a cut', async () => {
    const body = handBody();
    const calls: string[][] = [];
    const p = pump(body, {
      accept: () => undefined,
      write: async () => undefined,
      writev: async (cs) => void calls.push(cs.map((c) => c.toString())),
    });
    body.h().data(Buffer.from('a'));
    body.h().error(new Error('aborted'));
    await expect(p).rejects.toThrow('aborted');
    expect(calls).toEqual([['a']]);
  });
});
