import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { runInProcess } from '../helpers/cli.js';
import {
  agentEnv,
  notifyReceiver,
  slowMirror,
  spawnAgent,
  type AgentProcess,
  type NotifyReceiver,
  type SlowMirror,
} from '../helpers/daemon-process.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { padOnnx } from '../helpers/onnx-pad.js';
import { walk } from '../helpers/walk.js';

/**
 * SIGTERM with work in flight, against the real process and the real cloud: a download parked
 * half-way resumes after the restart (a Range request, nothing that reached the device fetched
 * twice) and nothing half-installed is ever visible; inferences already received are answered,
 * new connections are refused.
 */
const CHUNK = 64 * 1024;
/** The model is made this much larger (padOnnx), so that a download can be stopped half-way. */
const PAD = 3 * 1024 * 1024;

let f: TestFleet;
let mirror: SlowMirror;
let configPath: string;
let modelsDir: string;
let socket: string;
let modelBytes: number;
/** The padded model file's blob, as the mirror sees its path. */
let modelBlob: string;
const agents: AgentProcess[] = [];
const receivers: NotifyReceiver[] = [];

beforeAll(async () => {
  f = await startTestFleet();
  mirror = await slowMirror(f.cloud.httpUrl, { chunk: CHUNK, delayMs: 40, token: f.adminToken });
  f.cloud.fleet.fleet.useBlobMirror(`${mirror.url}/v1/blobs/`);
  const dir = join(f.root, 'big-model');
  const fx = await writeModelFolder(dir, 'classifier', { id: 'acme/big' });
  const padded = padOnnx(fx.bytes, fx.bytes.length + PAD, 7);
  modelBytes = padded.length;
  modelBlob = `/v1/blobs/${createHash('sha256').update(padded).digest('hex')}`;
  await writeFile(join(dir, 'model.onnx'), padded);
  const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: f.env });
  if (run.code !== 0) throw new Error(`publish failed: ${run.stderr}`);
  configPath = await f.provision('edge-1');
  modelsDir = join(f.root, 'models-edge-1');
  socket = join(f.root, 'edge-1.sock');
});
afterAll(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const r of receivers.splice(0)) r.close();
  await mirror?.close();
  await f?.close();
});
afterEach(() => undefined);

function start(): { agent: AgentProcess; rx: NotifyReceiver } {
  const rx = notifyReceiver(f.root);
  receivers.push(rx);
  const agent = spawnAgent({
    config: configPath,
    args: ['--models-dir', modelsDir, '--socket', socket],
    env: agentEnv({ NOTIFY_SOCKET: rx.path, OUTPOST_API_MAX_CONCURRENT_PER_MODEL: '16' }),
  });
  agents.push(agent);
  return { agent, rx };
}

const blobRequests = (): typeof mirror.requests =>
  mirror.requests.filter((r) => r.path.startsWith('/v1/blobs/') && r.bytes > 0);

describe('SIGTERM with work in flight', () => {
  it('parks a download half-way, shows nothing half-installed, and resumes it after the restart', async () => {
    const first = start();
    await first.rx.until((m) => m.startsWith('READY=1'), 60_000);
    await f.fleet.deploy({ model: 'acme/big' }, { kind: 'device', value: 'edge-1' });
    // Stop in the middle: at least 1 MiB through, the file is over 3 MiB.
    await waitFor('a download half-way', () => blobRequests().some((r) => r.bytes >= 1024 * 1024), 30_000);
    // The uplink stalls, and SIGTERM comes once every byte the mirror counted is in this host's
    // kernel: then what reached the device is known exactly (no piece racing the stop).
    mirror.hold();
    await waitFor('the mirror flushed', () => blobRequests().every((r) => r.unsent() === 0), 10_000);
    first.agent.signal('SIGTERM');
    await first.rx.until((m) => m.startsWith('STOPPING=1'));
    // 0 means the graceful stop finished inside run.ts's deadline (it exits 1 past it).
    expect(await first.agent.exited).toEqual({ code: 0, signal: null });
    const servedBefore = blobRequests()
      .filter((r) => r.path === modelBlob)
      .reduce((n, r) => n + r.bytes, 0);
    expect(servedBefore).toBeLessThan(modelBytes);
    mirror.release();

    // Nothing of acme/big is visible as a model: no version folder, no `current` link.
    const visible = (await walk(join(modelsDir, 'acme'))).map((p) => relative(modelsDir, p));
    expect(visible.filter((p) => !p.startsWith('.outpost'))).toEqual(
      visible.filter((p) => p === 'acme' || p === join('acme', 'big')),
    );
    // The partial bytes were kept for the resume.
    const partials = (await walk(modelsDir)).filter((p) => p.endsWith('.part'));
    expect(partials.length).toBeGreaterThan(0);
    const kept = (await Promise.all(partials.map((p) => stat(p)))).reduce((n, s) => n + s.size, 0);
    // Everything that reached the device is on disk: the bytes the agent had read but not yet
    // written (its write batch), and the ones still in its socket's receive buffer at the stop.
    expect(kept).toBe(servedBefore);

    const second = start();
    await second.rx.until((m) => m.startsWith('READY=1'), 60_000);
    const client = new AgentClient({ socket });
    await waitFor(
      'acme/big active after the restart',
      async () => (await client.models()).some((m) => m.id === 'acme/big' && m.activeVersion === 1),
      60_000,
    );
    // The restart asked for the rest with a Range request starting where the partial ended.
    const resumed = blobRequests().filter((r) => r.range !== undefined);
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed[0].status).toBe(206);
    expect(resumed[0].range).toBe(`bytes=${kept}-`);
    // So no byte of the model was fetched twice.
    const servedTotal = blobRequests()
      .filter((r) => r.path === modelBlob)
      .reduce((n, r) => n + r.bytes, 0);
    expect(servedTotal).toBe(modelBytes);
    // And it is the model, verified: it answers.
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await client.predict('acme/big', red))).toContain('red');
    expect((await readFile(join(modelsDir, 'acme', 'big', 'current', 'model.onnx'))).length).toBe(modelBytes);
    // Two agent starts and a 4 MiB download through a slow uplink: on a loaded machine this takes
    // more than the default 30 s. Every wait inside has its own bound.
  }, 120_000);

  it('answers inferences already received, refuses new connections, and exits 0', async () => {
    // The agent from the previous test serves acme/big.
    const agent = agents[agents.length - 1];
    const rx = receivers[receivers.length - 1];
    const image = await encodePng(rawImage(64, 64, () => [10, 10, 250]));
    // Each request sends its headers and half its body, so it is surely in flight at SIGTERM.
    const inFlight = Array.from({ length: 6 }, () => {
      let finish!: () => void;
      const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            socketPath: socket,
            method: 'POST',
            path: '/v1/models/acme/big/predict',
            headers: { 'content-type': 'image/png', 'content-length': image.length },
          },
          (res) => {
            let body = '';
            res.on('data', (b: Buffer) => {
              body += b.toString();
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.write(image.subarray(0, image.length >> 1));
        finish = () => req.end(image.subarray(image.length >> 1));
      });
      // Handled here too, so a failure before the assertions is reported once, not as unhandled.
      answered.catch(() => undefined);
      return { answered, finish: () => finish() };
    });
    // Let the agent accept them: its /metrics counts requests that reached a route.
    const client = new AgentClient({ socket });
    await waitFor(
      '6 requests in flight',
      async () => /outpost_model_inflight_requests\{model="acme\/big"\} 6/.test(await client.metrics()),
      10_000,
    );
    agent.signal('SIGTERM');
    await rx.until((m) => m.startsWith('STOPPING=1'));
    // Stopping: a new client cannot connect (the listener is closed, the socket file removed).
    await expect(new AgentClient({ socket }).health()).rejects.toBeDefined();
    for (const r of inFlight) r.finish();
    const answers = await Promise.all(inFlight.map((r) => r.answered));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body).toContain('blue');
    }
    expect(await agent.exited).toEqual({ code: 0, signal: null });
  });
});
