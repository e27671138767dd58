import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { slowMirror, type SlowMirror } from '../helpers/daemon-process.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { startS3rver, type S3Server } from '../helpers/engines/s3rver.js';
import { walk } from '../helpers/walk.js';
import { waitFor } from '../helpers/fleet.js';
import { padOnnx } from '../helpers/onnx-pad.js';
import { skipForPackage } from '../helpers/requires.js';
import { cloudProcess, freePort, type CloudProcess } from '../helpers/rollout-fleet.js';

/**
 * Two real `outpost cloud start` processes on one bucket (s3rver, a fake S3 on loopback), one
 * SQLite database in a shared data dir and one Redis between their brokers. A model is published
 * through replica A; a real agent process, connected to replica B's broker and told B's HTTP
 * (through a slow relay that lets the test stop it mid-file), downloads it through B, which
 * streams it out of the bucket. The agent is stopped half-way and started again: it resumes
 * with a Range request that B answers from S3 with 206, no byte is fetched twice, and the
 * verified model answers a prediction.
 */
const MODEL = 'acme/s3-model';
const DEVICE = 'edge-s3';
/** The model is made this much larger (padOnnx), so that a download can be stopped half-way. */
const PAD = 3 * 1024 * 1024;
const missing = missingRedis();

let root: string;
let s3: S3Server;
let redis: Redis;
let relay: SlowMirror;
const replicas: CloudProcess[] = [];
const agents: AgentProcess[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-rs3-'));
  if (missing) return;
  s3 = await startS3rver(root);
  redis = await startRedis(root);
  const [httpA, mqttA, httpB, mqttB] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // Devices reach B's HTTP through the relay (a stand-in for the network path to B).
  relay = await slowMirror(`http://127.0.0.1:${httpB}`, { chunk: 64 * 1024, delayMs: 40 });
  const shared = [
    '--host',
    '127.0.0.1',
    '--redis',
    redis.url,
    '--blob-store',
    `s3://${s3.bucket}/fleet`,
    '--s3-endpoint',
    s3.url,
    '--public-http',
    relay.url,
    '--public-mqtt',
    `mqtt://127.0.0.1:${mqttB}`,
  ];
  // One after the other: the first creates the admin token and the signing key the second reads.
  const dataDir = join(root, 'cloud');
  replicas.push(await cloudProcess(dataDir, root, { httpPort: httpA, mqttPort: mqttA, args: shared, env: s3.env }));
  replicas.push(await cloudProcess(dataDir, root, { httpPort: httpB, mqttPort: mqttB, args: shared, env: s3.env }));
}, 120_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.kill('SIGKILL')));
  for (const r of replicas) await r.stop();
  await relay?.close();
  await redis?.stop();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(skipForPackage(missing))('two replicas on one S3 bucket', () => {
  it('publish through A, a real agent downloads through B from the bucket, resumes a cut download, and predicts', async () => {
    const [a, b] = replicas as [CloudProcess, CloudProcess];

    // Publish through A: the blobs land in the bucket, not in the shared data dir.
    const dir = join(root, 'model');
    const fx = await writeModelFolder(dir, 'classifier', { id: MODEL });
    const padded = padOnnx(fx.bytes, fx.bytes.length + PAD, 7);
    await writeFile(join(dir, 'model.onnx'), padded);
    const modelSha = createHash('sha256').update(padded).digest('hex');
    const modelPath = `/v1/blobs/${modelSha}`;
    const env = cleanEnv({ OUTPOST_CLOUD_URL: a.http, OUTPOST_TOKEN: a.token, HOME: root });
    const published = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env });
    expect(published.code, published.stderr).toBe(0);
    expect(await s3.keys('fleet/sha256/')).toContain(`fleet/sha256/${modelSha}`);
    expect(existsSync(join(root, 'cloud', 'blobs'))).toBe(false);

    // A device provisioned through A is told B's address (through the relay) for HTTP and MQTT.
    const { agentConfig } = await a.fleet.provision(DEVICE, ['s3']);
    expect(agentConfig.cloud.http).toBe(relay.url);
    const provisioned = join(root, `${DEVICE}.provisioned.json`);
    await writeFile(provisioned, JSON.stringify(agentConfig));
    const modelsDir = join(root, `models-${DEVICE}`);
    const socket = join(root, `${DEVICE}.sock`);
    const config = await writeAgentConfig(provisioned, join(root, `${DEVICE}.json`), { modelsDir, socket });
    const blobRequests = () => relay.requests.filter((r) => r.path === modelPath && r.bytes > 0);

    const first = spawnAgent(config);
    agents.push(first);
    await a.fleet.deploy({ model: MODEL }, { kind: 'device', value: DEVICE });
    // Stop in the middle: at least 1 MiB through, the file is over 3 MiB.
    await waitFor('a download half-way', () => blobRequests().some((r) => r.bytes >= 1024 * 1024), 60_000);
    // The path stalls, and SIGTERM comes once every byte the relay counted is in this host's
    // kernel: then what reached the device is known exactly.
    relay.hold();
    await waitFor('the relay flushed', () => blobRequests().every((r) => r.unsent() === 0), 10_000);
    await first.kill('SIGTERM');
    const servedBefore = blobRequests().reduce((n, r) => n + r.bytes, 0);
    expect(servedBefore).toBeLessThan(padded.length);
    relay.release();
    const partials = (await walk(modelsDir)).filter((p) => p.endsWith('.part'));
    expect(partials.length, first.output().slice(-4000)).toBe(1);
    const kept = (await stat(partials[0]!)).size;
    expect(kept).toBe(servedBefore);

    const second = spawnAgent(config);
    agents.push(second);
    const client = new AgentClient({ socket });
    await waitFor(
      `${MODEL} active after the restart`,
      async () => (await client.models().catch(() => [])).some((m) => m.id === MODEL && m.activeVersion === 1),
      90_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${second.output().slice(-6000)}\n${b.output().slice(-3000)}`);
    });

    // The restart asked B for the rest with a Range request where the partial ended, and B
    // answered 206 out of the bucket; so no byte of the model was fetched twice.
    const resumed = blobRequests().filter((r) => r.range !== undefined);
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed[0]!.range).toBe(`bytes=${kept}-`);
    expect(resumed[0]!.status).toBe(206);
    expect(blobRequests().reduce((n, r) => n + r.bytes, 0)).toBe(padded.length);
    // B asked the bucket for exactly that range (GetObject with Range), not for the whole blob.
    const gets = s3.requests.filter((r) => r.startsWith(`GET /${s3.bucket}/fleet/sha256/${modelSha}`));
    expect(gets.some((r) => r.endsWith(` bytes=${kept}-${padded.length - 1}`))).toBe(true);

    // The verified model answers.
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await client.predict(MODEL, red))).toContain('red');

    // And replica A, the leader, took the device's report in through Redis from B's broker.
    await waitFor('A sees the device active', async () => {
      const r = await fetch(`${a.http}/v1/fleet/devices?limit=10`, { headers: { authorization: `Bearer ${a.token}` } });
      const page = (await r.json()) as {
        devices: { device: string; models: { id: string; active: number | null }[] }[];
      };
      return page.devices.some((d) => d.device === DEVICE && d.models.some((m) => m.id === MODEL && m.active === 1));
    });
  }, 240_000);
});
