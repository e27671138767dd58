import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { appendFile, chmod, mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { ClusterSecrets } from '../../cloud-broker/secrets/store.js';
import { loadOrCreateSigner } from '../../cloud-broker/signing/keys.js';
import { silentLogger } from '../../protocol/log.js';
import type { DesiredSigned } from '../../protocol/desired-state.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { runInProcess } from '../helpers/cli.js';
import { blobDir } from '../helpers/blob-dir.js';

/**
 * Security at the agent level (the attacks of docs/security.md): a real cloud, a real agent daemon,
 * and each attack done for real: blobs tampered in the cloud's data dir, documents crafted and
 * published through the cloud's own service-identity MQTT client (signed with the cloud's key read
 * from its data dir, with a stranger's key, or not re-signed at all). Every attack must be refused
 * with its code, visible in the cloud's copy of the device's report, while v1 keeps answering
 * predictions through the agent's socket.
 */
const DEVICE = 'sec-1';
const MODEL = 'acme/colors';

describe('agent-level security: every attack refused with its code while v1 keeps serving', () => {
  let f: TestFleet;
  let agent: TestAgent;
  let red: Buffer;
  let firstDoc: string;

  beforeAll(async () => {
    f = await startTestFleet();
    red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    const v1 = await f.publish(MODEL);
    await f.provision(DEVICE);
    agent = await f.startAgent(DEVICE);
    await f.fleet.deploy({ model: `${MODEL}@${v1}` }, { kind: 'device', value: DEVICE });
    await waitFor('v1 active', () => activeAt(agent, MODEL, v1));
    firstDoc = f.cloud.fleet.fleet.store.desiredOf(DEVICE)!.doc!;
  }, 60_000);
  afterAll(async () => {
    await f?.close();
  });

  /** v1 is current on disk and answers with its own labels through the socket. */
  async function v1StillServes(): Promise<void> {
    expect(agent.daemon.reconciler.report().models.find((m) => m.id === MODEL)?.activeVersion).toBe(1);
    expect((await agent.daemon.store.list()).find((m) => m.id === MODEL)?.current).toBe(1);
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"red"');
  }

  /** The code of a model-level refusal as the cloud shows it (`outpost rollout status`). */
  async function modelErrorInCloud(version: number, code: string): Promise<void> {
    await waitFor(`${code} for ${MODEL}@${version} in rollout status`, async () => {
      const d = (await f.fleet.rollout()).find((x) => x.device === DEVICE);
      const m = d?.models.find((x) => x.id === MODEL);
      return m?.desired === version && m.state === 'failed' && m.error?.code === code && m.active === 1;
    });
  }

  /** The code of a refused document as the cloud shows it (device show and rollout status). */
  async function documentErrorInCloud(code: string): Promise<void> {
    await waitFor(`${code} reported to the cloud`, async () => {
      const shown = await f.fleet.showDevice(DEVICE);
      return shown.reported?.desiredError?.code === code;
    });
    const d = (await f.fleet.rollout()).find((x) => x.device === DEVICE);
    expect(d?.desiredError?.code).toBe(code);
  }

  /** Publishes a new version whose only new blob is labels.txt, and returns that blob's path. */
  async function publishWithLabels(labels: string[]): Promise<{ version: number; blob: string; size: number }> {
    const version = await f.publish(MODEL, 'classifier', { labels });
    const data = Buffer.from(labels.join('\n') + '\n');
    const { sha256Hex } = await import('../helpers/blob-server.js');
    const sha = sha256Hex(data);
    return { version, blob: blobDir(f.cloud).pathOf(sha), size: data.length };
  }

  async function deploy(version: number): Promise<void> {
    await f.fleet.deploy({ model: `${MODEL}@${version}` }, { kind: 'device', value: DEVICE });
  }

  async function tamper(blob: string, how: (p: string) => Promise<void>): Promise<void> {
    await chmod(blob, 0o644);
    await how(blob);
  }

  it('a flipped byte in a blob on the server: FETCH_HASH_MISMATCH', async () => {
    const v = await publishWithLabels(['flip-a', 'flip-b', 'flip-c']);
    await tamper(v.blob, async (p) => {
      const b = await readFile(p);
      b[2] ^= 0xff;
      await writeFile(p, b);
    });
    await deploy(v.version);
    await modelErrorInCloud(v.version, 'FETCH_HASH_MISMATCH');
    await v1StillServes();
  });

  it('a truncated file: FETCH_TRUNCATED', async () => {
    const v = await publishWithLabels(['short-a', 'short-b', 'short-c']);
    await tamper(v.blob, (p) => truncate(p, Math.floor(v.size / 2)));
    await deploy(v.version);
    await modelErrorInCloud(v.version, 'FETCH_TRUNCATED');
    await v1StillServes();
  });

  it('a file longer than signed: FETCH_TOO_LONG', async () => {
    const v = await publishWithLabels(['long-a', 'long-b', 'long-c']);
    await tamper(v.blob, (p) => appendFile(p, Buffer.alloc(4096, 0x41)));
    await deploy(v.version);
    await modelErrorInCloud(v.version, 'FETCH_TOO_LONG');
    await v1StillServes();
    // Nothing of the refused versions reached the models folder.
    const versions = (await agent.daemon.store.list()).find((m) => m.id === MODEL)?.versions;
    expect(versions).toEqual([1]);
  });

  it('a TensorRT engine for another device type: SYNC_WRONG_DEVICE_TYPE, nothing downloaded', async () => {
    const dir = join(f.root, 'trt-model');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'engine.trt'), Buffer.alloc(2048, 7));
    await writeFile(join(dir, 'labels.txt'), 'a\nb\n');
    await writeFile(
      join(dir, 'alwaysai.model.json'),
      JSON.stringify({
        id: MODEL,
        dataset: 'generated',
        license: 'Apache-2.0',
        public: false,
        website_url: '',
        accuracy: '',
        inference_time: 0,
        mean_average_precision_top_1: 0,
        mean_average_precision_top_5: 0,
        model_parameters: {
          framework_type: 'tensor-rt',
          device: 'agx-xavier',
          architecture: 'yolo',
          purpose: 'ObjectDetection',
          model_file: 'engine.trt',
          label_file: 'labels.txt',
          size: [416, 416],
        },
      }),
    );
    const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: f.env });
    expect(run.code, run.stderr).toBe(0);
    const version = run.json<{ version: number }>().version;
    await deploy(version);
    await modelErrorInCloud(version, 'SYNC_WRONG_DEVICE_TYPE');
    await v1StillServes();
  });

  // ---- documents the cloud would never produce -------------------------------------------

  async function cloudSigner() {
    // The cloud's own key, from its database: what an attacker who stole it could sign.
    return loadOrCreateSigner(new ClusterSecrets(f.cloud.db), silentLogger);
  }

  function currentSigned(): DesiredSigned {
    return (JSON.parse(f.cloud.fleet.fleet.store.desiredOf(DEVICE)!.doc!) as { signed: DesiredSigned }).signed;
  }

  /** A document one revision ahead of the cloud's, with `change` applied, signed by the cloud's key. */
  async function crafted(change: (s: DesiredSigned) => void): Promise<string> {
    const signed = structuredClone(currentSigned());
    signed.revision += 1;
    change(signed);
    return JSON.stringify((await cloudSigner()).sign(signed));
  }

  const publishRaw = (doc: string): Promise<void> => f.cloud.fleet.publisher.publishDesired(DEVICE, doc);

  it('a bad signature (the signed part changed after signing): DESIRED_BAD_SIGNATURE', async () => {
    const env = JSON.parse(f.cloud.fleet.fleet.store.desiredOf(DEVICE)!.doc!) as { signed: DesiredSigned };
    env.signed.revision += 1;
    env.signed.models[0].files[0].sha256 = 'f'.repeat(64);
    await publishRaw(JSON.stringify(env));
    await documentErrorInCloud('DESIRED_BAD_SIGNATURE');
    await v1StillServes();
  });

  it('a key the device does not trust: DESIRED_UNTRUSTED_KEY', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const stranger = createSigner(privateKey, createPublicKey(privateKey));
    const signed = structuredClone(currentSigned());
    signed.revision += 1;
    await publishRaw(JSON.stringify(stranger.sign(signed)));
    await documentErrorInCloud('DESIRED_UNTRUSTED_KEY');
    await v1StillServes();
  });

  it('a replayed older revision: DESIRED_ROLLBACK', async () => {
    expect(currentSigned().revision).toBeGreaterThan(
      (JSON.parse(firstDoc) as { signed: DesiredSigned }).signed.revision,
    );
    await publishRaw(firstDoc);
    await documentErrorInCloud('DESIRED_ROLLBACK');
    await v1StillServes();
  });

  it('an expired document: DESIRED_EXPIRED', async () => {
    await publishRaw(
      await crafted((s) => {
        s.issued = '2020-01-01T00:00:00Z';
        s.expires = '2020-01-08T00:00:00Z';
      }),
    );
    await documentErrorInCloud('DESIRED_EXPIRED');
    await v1StillServes();
  });

  it('a file path with .. or an absolute path: DESIRED_UNSAFE_PATH', async () => {
    for (const bad of ['../../../etc/cron.d/evil', '/etc/cron.d/evil']) {
      await publishRaw(
        await crafted((s) => {
          s.models[0].files[0].path = bad;
        }),
      );
      await documentErrorInCloud('DESIRED_UNSAFE_PATH');
      // Clear the code before the next round so that each path is seen refused on its own.
      await publishRaw(await crafted((s) => void (s.expires = s.issued)));
      await documentErrorInCloud('DESIRED_EXPIRED');
    }
    await v1StillServes();
  });

  it('after all of it, a genuine deployment still converges', async () => {
    const version = await f.publish(MODEL, 'classifier', { labels: ['rouge', 'vert', 'bleu'] });
    await deploy(version);
    await waitFor('genuine version active', () => activeAt(agent, MODEL, version));
    expect(JSON.stringify(await agent.client.predict(MODEL, red))).toContain('"rouge"');
    await waitFor(
      'no refusal reported any more',
      async () => (await f.fleet.showDevice(DEVICE)).reported?.desiredError === undefined,
    );
  });
});
