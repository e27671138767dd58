import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, rawImage } from '../fixtures/images.js';
import { startBlobServer, type BlobServer } from '../helpers/blob-server.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { checkModelFolder, mirroredModel, type MirroredModel } from './agent-fixture.js';

/**
 * Disk full during a download, at the agent level: the agent's models folder is on a real 8 MiB
 * tmpfs; while a 5 MiB version downloads (through a throttled mirror), another writer fills the
 * disk. The install fails with a no-space code in the cloud's rollout, v1 keeps serving through
 * the socket with every file intact, and once space is freed a `sync` command installs v2.
 */
const DEVICE = 'full-1';
const MODEL = 'acme/full';

const mnt = await mkdtemp(join(tmpdir(), 'outpost-agent-full-'));
function tryMount(): string | null {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'tmpfs', mnt], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a small tmpfs (needs root and CAP_SYS_ADMIN): ${(err as Error).message.split('\n')[0]}`;
  }
}
const cannotMount = tryMount();

describe.skipIf(skipForPackage(cannotMount))('disk full during a download, agent level', () => {
  let f: TestFleet;
  let mirror: BlobServer;
  let agent: TestAgent;
  let m: MirroredModel;
  const filler = join(mnt, 'filler.bin');

  beforeAll(async () => {
    f = await startTestFleet();
    mirror = await startBlobServer();
    m = mirroredModel(f, mirror, MODEL, DEVICE);
    await f.provision(DEVICE);
    agent = await f.startAgent(DEVICE, { modelsDir: join(mnt, 'models'), 'download.minFreeBytes': 0 });
  }, 30_000);
  afterAll(async () => {
    await f?.close();
    await mirror?.close();
    if (!cannotMount) execFileSync('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  it('fails with a no-space code while v1 keeps serving, and installs once space is back', async () => {
    const v1 = await m.publish(256 * 1024, 1);
    await m.deploy(v1);
    await waitFor('v1 active', () => activeAt(agent, MODEL, v1));
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));

    const v2 = await m.publish(5 * 1024 * 1024, 2);
    mirror.misbehave({ pieceSize: 64 * 1024, delayMs: 20 });
    const file = await m.deploy(v2);
    await waitFor('download under way', () =>
      mirror.requests.some((r) => r.sha256 === file.sha256 && r.bodyBytes > 1024 * 1024),
    );
    // Another writer takes every free byte of the filesystem.
    const mb = Buffer.alloc(1024 * 1024, 1);
    for (;;) {
      try {
        await appendFile(filler, mb);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
    const code = await waitFor('no-space failure in rollout status', () => {
      const m = f.cloud.fleet.fleet
        .rolloutStatus()
        .find((d) => d.device === DEVICE)
        ?.models.find((x) => x.id === MODEL);
      return m?.state === 'failed' && m.desired === v2 && m.active === v1 ? m.error?.code : null;
    });
    expect(['FETCH_NO_SPACE', 'STORE_NO_SPACE']).toContain(code);
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"red"');
    expect(await checkModelFolder(join(mnt, 'models'), MODEL, [v1], m.signed)).toBe(v1);

    // Space comes back; the operator's `sync` command retries at once.
    await rm(filler);
    agent.daemon.reconciler.syncNow();
    await waitFor('v2 active after space was freed', () => activeAt(agent, MODEL, v2), 30_000);
    expect(await checkModelFolder(join(mnt, 'models'), MODEL, [v2], m.signed)).toBe(v2);
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"red"');
  }, 60_000);
});
