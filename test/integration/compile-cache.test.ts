import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { agentEnv, notifyReceiver, REPO, spawnAgent, writeStandaloneConfig } from '../helpers/daemon-process.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * V8's code cache of the device bundle (agent/system/compile-cache.ts), with the bundle a device
 * runs (dist/agent-bundle, written by agent/bundle.mjs here) as a real child process: the first
 * start compiles and writes the cache after READY, the next one reads it, and an entry that does
 * not fit (stale, corrupt) or a folder someone else may write is never used.
 */
const tmp = useTempDir('outpost-compile-cache-', 'all');

interface Startup {
  compileCache: { hits?: number; misses?: number; off?: string };
}

/** One `run` of the bundle to READY=1 and a clean stop; returns its start-up log. */
async function startAndStop(cacheDir: string, sub: string): Promise<Startup> {
  const dir = join(tmp.dir, sub);
  await mkdir(dir, { recursive: true });
  const { path } = await writeStandaloneConfig(dir);
  const rx = notifyReceiver(dir);
  const agent = spawnAgent({
    config: path,
    compiled: true,
    env: agentEnv({ NOTIFY_SOCKET: rx.path, OUTPOST_COMPILE_CACHE: cacheDir }),
  });
  try {
    await rx.until((m) => m.startsWith('READY=1'), 30_000);
    const line = await agent.waitForLog((l) => l.msg === 'local API listening' && l.module === 'daemon');
    agent.signal('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    return (line as unknown as { startup: Startup }).startup;
  } finally {
    rx.close();
    await agent.kill();
  }
}

const versionDir = (cache: string) => join(cache, `node-${process.version}-${process.arch}`);

beforeAll(() => {
  execFileSync(process.execPath, [join(REPO, 'agent/bundle.mjs')], { stdio: 'ignore' });
}, 120_000);

describe('the compile cache of the device bundle', () => {
  it('is written after the first start and read by the next, in a folder of its own (0700, entries 0600)', async () => {
    const cache = join(tmp.dir, 'cache-a');
    const first = await startAndStop(cache, 'a1');
    expect(first.compileCache.hits).toBe(0);
    expect(first.compileCache.misses).toBeGreaterThan(3);
    const entries = (await readdir(versionDir(cache))).filter((f) => f.endsWith('.cache'));
    // Everything that compiled before READY, and the sync side after it.
    expect(entries.length).toBeGreaterThan(first.compileCache.misses!);
    expect((await stat(versionDir(cache))).mode & 0o777).toBe(0o700);
    for (const e of entries) expect((await stat(join(versionDir(cache), e))).mode & 0o777).toBe(0o600);

    const second = await startAndStop(cache, 'a2');
    expect(second.compileCache).toEqual({ hits: first.compileCache.misses, misses: 0 });
  }, 90_000);

  it('compiles a file whose entry is stale or corrupt without it, and writes a good one again', async () => {
    const cache = join(tmp.dir, 'cache-b');
    const first = await startAndStop(cache, 'b1');
    const entries = (await readdir(versionDir(cache))).filter((f) => f.endsWith('.cache'));
    const run = entries.find((f) => f.startsWith('run-'))!;
    const main = entries.find((f) => f.startsWith('main-'))!;
    expect(run && main).toBeTruthy();
    // Stale: the recorded mtime no longer matches the file's (the header's third field).
    const a = await readFile(join(versionDir(cache), main));
    a.writeDoubleLE(a.readDoubleLE(16) - 1000, 16);
    await writeFile(join(versionDir(cache), main), a);
    // Corrupt: V8's bytes overwritten. V8 rejects them by their checksum (the hook turns that check
    // on; without it V8 aborts the process while deserializing), and the agent compiles as usual.
    const b = await readFile(join(versionDir(cache), run));
    b.fill(0x5a, 24 + 16);
    await writeFile(join(versionDir(cache), run), b);

    const second = await startAndStop(cache, 'b2');
    expect(second.compileCache).toEqual({ hits: first.compileCache.misses! - 2, misses: 2 });
    const third = await startAndStop(cache, 'b3');
    expect(third.compileCache).toEqual({ hits: first.compileCache.misses, misses: 0 });
  }, 120_000);

  it('is not used from a folder that others may write, nor with OUTPOST_COMPILE_CACHE=off', async () => {
    const cache = join(tmp.dir, 'cache-c');
    await startAndStop(cache, 'c1');
    await chmod(versionDir(cache), 0o770);
    const shared = await startAndStop(cache, 'c2');
    expect(shared.compileCache.off).toMatch(/writable by group or others \(mode 770\)/);

    const off = await startAndStop('off', 'c3');
    expect(off.compileCache).toEqual({ off: 'OUTPOST_COMPILE_CACHE=off' });
  }, 90_000);
});
