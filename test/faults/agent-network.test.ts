import net from 'node:net';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, rawImage } from '../fixtures/images.js';
import { startBlobServer, type BlobServer } from '../helpers/blob-server.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { checkModelFolder, mirroredModel, type MirroredModel } from './agent-fixture.js';

/**
 * Network faults at the agent level: a real cloud and a real agent daemon, with the blobs served
 * by a mirror (the signed `blobBase` points at it, as docs/security.md allows: every byte is
 * verified against the signed hash, so a mirror needs no trust) that can throttle, cut
 * connections and ignore Range. The cloud's aedes broker is restarted for real mid-download.
 */
const DEVICE = 'net-1';
const MODEL = 'acme/net';
/** The mirror sends bodies in pieces of this size: "one chunk" of the resume assertions. */
const PIECE = 256 * 1024;

describe('agent-level network faults', () => {
  let f: TestFleet;
  let mirror: BlobServer;
  let agent: TestAgent;
  let red: Buffer;
  let restarted: { close(): Promise<void> } | null = null;
  let m: MirroredModel;

  beforeAll(async () => {
    f = await startTestFleet();
    mirror = await startBlobServer();
    m = mirroredModel(f, mirror, MODEL, DEVICE);
    red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    await f.provision(DEVICE);
    agent = await f.startAgent(DEVICE, { 'download.minFreeBytes': 0 });
    const v1 = await m.publish(64 * 1024, 1);
    await m.deploy(v1);
    await waitFor('v1 active', () => activeAt(agent, MODEL, v1));
  }, 60_000);
  afterAll(async () => {
    await f?.close();
    await restarted?.close();
    await mirror?.close();
  });

  const requestsFor = (sha: string) => mirror.requests.filter((r) => r.sha256 === sha);
  const servedFor = (sha: string) => requestsFor(sha).reduce((n, r) => n + r.bodyBytes, 0);

  async function v1Serves(): Promise<void> {
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"red"');
  }

  /** Closes the cloud's aedes and starts a new one on the same port with the same auth and ACL hooks. */
  async function restartBroker(): Promise<void> {
    const old = f.cloud.fleet.broker!;
    const port = Number(new URL(old.url).port);
    const hooks = {
      authenticate: old.broker.authenticate,
      authorizePublish: old.broker.authorizePublish,
      authorizeSubscribe: old.broker.authorizeSubscribe,
    };
    await old.close();
    // In-memory retained messages and sessions are gone, as after a real restart.
    const broker = await Aedes.createBroker(hooks);
    const server = net.createServer((s) => broker.handle(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    restarted = {
      close: () => new Promise<void>((r) => broker.close(() => server.close(() => r()))),
    };
  }

  it('the broker restarted mid-download: the download is not restarted from zero', async () => {
    const size = 24 * 1024 * 1024;
    const v = await m.publish(size, 2);
    mirror.misbehave({ pieceSize: PIECE, delayMs: 40 });
    let disconnects = 0;
    agent.daemon.session.on('disconnected', () => disconnects++);
    const file = await m.deploy(v);
    await waitFor('download under way', () => servedFor(file.sha256) > 4 * 1024 * 1024);
    await restartBroker();
    await waitFor('agent reconnected to the new broker', () => disconnects > 0 && agent.daemon.session.connected);
    await v1Serves();
    await waitFor('v2 active', () => activeAt(agent, MODEL, v), 60_000);
    // Every byte of the blob crossed the network once, give or take what was in flight.
    expect(servedFor(file.sha256) - file.size).toBeLessThan(PIECE);
    // The redelivered desired state (same revision) did not cancel the download in flight.
    expect(requestsFor(file.sha256)).toHaveLength(1);
    await checkModelFolder(agent.modelsDir, MODEL, [v], m.signed);
    // The cloud's view comes back through the new broker too.
    await waitFor(
      'rollout converged after the restart',
      () => f.cloud.fleet.fleet.rolloutStatus().find((d) => d.device === DEVICE)?.converged,
    );
  });

  it('the HTTP connection cut repeatedly mid-file: each attempt resumes from its offset', async () => {
    const v = await m.publish(8 * 1024 * 1024, 3);
    mirror.misbehave({ pieceSize: 64 * 1024, cutAfter: 1024 * 1024, cutTimes: 5 });
    const file = await m.deploy(v);
    await waitFor('v3 active', () => activeAt(agent, MODEL, v), 60_000);
    const reqs = requestsFor(file.sha256);
    expect(reqs.length).toBeGreaterThanOrEqual(6);
    // Range offsets only grow: bytes already on disk were never asked for again.
    const offsets = reqs.map((r) => Number(/^bytes=(\d+)-$/.exec(r.range ?? 'bytes=0-')?.[1]));
    expect(offsets[0]).toBe(0);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBeGreaterThan(offsets[i - 1]);
    expect(reqs.slice(1).every((r) => r.status === 206 && r.ifRange === `"${file.sha256}"`)).toBe(true);
    expect(servedFor(file.sha256)).toBe(file.size);
    await checkModelFolder(agent.modelsDir, MODEL, [v, v - 1], m.signed);
  });

  it('a server that answers a Range request with 200: the partial is restarted, not appended to', async () => {
    const v = await m.publish(4 * 1024 * 1024, 4);
    mirror.misbehave({ pieceSize: 64 * 1024, cutAfter: 1024 * 1024, cutTimes: 1, ignoreRange: true });
    const file = await m.deploy(v);
    await waitFor('v4 active', () => activeAt(agent, MODEL, v), 60_000);
    const reqs = requestsFor(file.sha256);
    expect(reqs.length).toBe(2);
    expect(reqs[1].range).toBe('bytes=1048576-');
    expect(reqs[1].status).toBe(200);
    // Appending the 200 body would have made a 5 MiB file that fails the hash; it is exact.
    await checkModelFolder(agent.modelsDir, MODEL, [v, v - 1], m.signed);
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"red"');
  });
});
