/**
 * `npm run bench -- soak [--kills=N] [--size-mib=M]`: SIGKILL the real agent process N times
 * (default 1,000, the number) at random points while it installs a version of M MiB
 * (default 16) that a throttled mirror serves at about 4 MB/s; three kills in four are aimed
 * at the running download, the fourth anywhere in the round. Two versions alternate and the agent keeps one (keepVersions 1), so every round
 * is a real download. After each kill the models folder must hold the old or the new complete
 * version (every file hashed against the signed list, test/faults/agent-fixture.ts); at the end
 * the restarted agent must converge on the last deployment. Prints where the kills landed.
 *
 * test/faults/agent-kill9.test.ts is the short version that runs in CI (50 kills, small model).
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startBlobServer } from '../test/helpers/blob-server.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../test/helpers/agent-process.js';
import { startTestFleet, waitFor } from '../test/helpers/fleet.js';
import { checkModelFolder, mirroredModel } from '../test/faults/agent-fixture.js';
import type { BenchRow } from './run.js';

const DEVICE = 'soak';
const MODEL = 'acme/soak';

function flag(name: string, fallback: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
}

type Landed = 'before download' | 'mid-download' | 'downloaded, not yet active' | 'new version active';

export async function run(): Promise<BenchRow[]> {
  const kills = flag('kills', 1000);
  const size = flag('size-mib', 16) * 1024 * 1024;
  const f = await startTestFleet();
  const mirror = await startBlobServer();
  let agent: AgentProcess | null = null;
  try {
    // 16 KiB every 4 ms: about 4 MB/s, a download of `size` takes about four seconds.
    mirror.misbehave({ pieceSize: 16 * 1024, delayMs: 4 });
    const m = mirroredModel(f, mirror, MODEL, DEVICE);
    const provisioned = await f.provision(DEVICE);
    const modelsDir = join(f.root, 'models-soak');
    const config = await writeAgentConfig(provisioned, join(f.root, 'soak-agent.json'), {
      modelsDir,
      socket: join(f.root, 'soak.sock'),
      extra: { keepVersions: 1, log: { level: 'warn' } },
    });
    const versions = [await m.publish(size, 1), await m.publish(size, 2)];
    const shaOf = new Map<number, string>();
    const converged = (v: number): boolean => {
      const d = f.cloud.fleet.fleet.rolloutStatus().find((x) => x.device === DEVICE);
      return !!d?.converged && d.models.some((x) => x.id === MODEL && x.active === v && x.state === 'active');
    };
    const deploy = async (v: number) => shaOf.set(v, (await m.deploy(v)).sha256);

    await deploy(versions[0]);
    agent = spawnAgent(config);
    await waitFor('first install', () => converged(versions[0]), 60_000);
    // The span of one round: a fresh start, then the download and install of the other version.
    await agent.kill();
    const t0 = performance.now();
    await deploy(versions[1]);
    agent = spawnAgent(config);
    const partOf = (v: number) => join(modelsDir, '.outpost/blobs', `${shaOf.get(v)!}.part`);
    await waitFor('second download started', () => existsSync(partOf(versions[1])), 60_000);
    const t1 = performance.now();
    await waitFor('second install', () => converged(versions[1]), 60_000);
    const span = performance.now() - t0;
    const download = performance.now() - t1;

    const landed: Record<Landed, number> = {
      'before download': 0,
      'mid-download': 0,
      'downloaded, not yet active': 0,
      'new version active': 0,
    };
    let current = versions[1];
    let checked = 0;
    let target = current;
    for (let round = 0; round < kills; round++) {
      // Always the version that is not active, so every round is a download and an install.
      const next = current === versions[0] ? versions[1] : versions[0];
      target = next;
      await agent.kill();
      await deploy(next);
      agent = spawnAgent(config);
      // Three rounds in four aim at the download: wait until it runs, then kill at a random
      // point of what is left of it.
      // The fourth kills anywhere in a whole round, start-up and activation included.
      if (round % 4 !== 3) {
        const deadline = performance.now() + span;
        while (!existsSync(partOf(next)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        // A resumed download has only the rest to fetch: aim within that.
        const have = existsSync(partOf(next)) ? statSync(partOf(next)).size : 0;
        await new Promise((r) => setTimeout(r, Math.random() * download * Math.max(0.05, 1 - have / size)));
      } else await new Promise((r) => setTimeout(r, Math.random() * span * 1.1));
      await agent.kill('SIGKILL');
      const blob = partOf(next).slice(0, -'.part'.length);
      const now = await checkModelFolder(modelsDir, MODEL, [current, next], m.signed);
      checked++;
      landed[
        now === next
          ? 'new version active'
          : existsSync(`${blob}.part`)
            ? 'mid-download'
            : existsSync(blob)
              ? 'downloaded, not yet active'
              : 'before download'
      ]++;
      current = now;
      agent = spawnAgent(config);
    }
    const last = target;
    await waitFor('convergence after the last kill', () => converged(last), 60_000);
    await checkModelFolder(modelsDir, MODEL, [last], m.signed);
    const clean =
      !existsSync(join(modelsDir, '.outpost/journal.json')) &&
      (await readdir(join(modelsDir, '.outpost/staging'))).length === 0;
    return [
      {
        name: `${kills} SIGKILLs during installs of ${size / 1024 / 1024} MiB versions`,
        metric: 'folders checked, old or new complete',
        ours: checked,
        note: `mixed or partial: 0 (a bad folder stops the bench); converged at the end: yes; journal and staging empty: ${clean ? 'yes' : 'NO'}`,
      },
      ...(Object.entries(landed) as [Landed, number][]).map(([where, n]) => ({
        name: `  kills that landed ${where}`,
        metric: 'kills',
        ours: n,
        note: `${((100 * n) / kills).toFixed(0)}%`,
      })),
      { name: '  one undisturbed round (start + download + install)', metric: 'ms', ours: span },
      { name: '  of which the download', metric: 'ms', ours: download },
    ];
  } finally {
    await agent?.kill();
    await mirror.close();
    await f.close();
  }
}
