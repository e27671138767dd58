import { describe, expect, it } from 'vitest';
import { Backoff } from '../../agent/sync/backoff.js';
import { ExclusiveRunner } from '../../agent/sync/exclusive-runner.js';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('exclusive runner', () => {
  it('runs one task at a time, aborts the running one for a newer one and keeps only the newest queued', async () => {
    const log: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const runner = new ExclusiveRunner((err) => log.push(`error ${String(err)}`));
    const task = (name: string) => async (signal: AbortSignal) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      log.push(`start ${name}`);
      for (let i = 0; i < 5 && !signal.aborted; i++) await tick();
      log.push(`${signal.aborted ? 'aborted' : 'done'} ${name}`);
      concurrent--;
    };
    runner.run(task('a'));
    await tick(2);
    runner.run(task('b'));
    runner.run(task('c'));
    await runner.idle();
    expect(maxConcurrent).toBe(1);
    expect(log).toEqual(['start a', 'aborted a', 'start c', 'done c']);
  });

  it('reports errors of tasks that were not aborted', async () => {
    const errors: unknown[] = [];
    const runner = new ExclusiveRunner((err) => errors.push(err));
    runner.run(async () => {
      throw new Error('disk on fire');
    });
    await runner.idle();
    expect(String(errors[0])).toContain('disk on fire');
  });
});

describe('backoff', () => {
  it('grows exponentially up to the ceiling, with jitter, and resets', () => {
    const b = new Backoff(100, 1000, () => 1);
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000]);
    b.reset();
    expect(b.next()).toBe(100);
    const low = new Backoff(100, 1000, () => 0);
    expect(low.next()).toBe(50);
  });
});
