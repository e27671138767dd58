import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../protocol/topics.js';
import type { LatestTelemetry } from '../../cloud-broker/fleet/telemetry.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { runInProcess } from '../helpers/cli.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';

/**
 * Telemetry from a real agent daemon to the real cloud: sampled on the configured interval and on
 * the cloud's `telemetry` command, carried over MQTT, validated and kept (latest per device) in
 * SQLite, and shown by `outpost device show`.
 */
let f: TestFleet;
let agent: TestAgent;
beforeAll(async () => {
  f = await startTestFleet();
  await f.publish('acme/colors');
  await f.provision('cam-t');
  agent = await f.startAgent('cam-t', { 'telemetry.enabled': true, 'telemetry.intervalSeconds': 5 });
  await f.fleet.deploy({ model: 'acme/colors' }, { kind: 'device', value: 'cam-t' });
  await waitFor('cam-t active', () => activeAt(agent, 'acme/colors', 1));
});
afterAll(async () => {
  await f?.close();
});

const latest = async (): Promise<LatestTelemetry | null> => (await f.fleet.showDevice('cam-t')).telemetry;

describe('cloud telemetry', () => {
  it('lands a periodic sample in the cloud without being asked', async () => {
    const t = await waitFor('a periodic sample', latest, 15_000);
    expect(t.sample.deviceId).toBe('cam-t');
    expect(t.sample.cpu.cores).toBeGreaterThan(0);
    expect(t.sample.memory.totalBytes).toBeGreaterThan(t.sample.memory.availableBytes);
    expect(t.sample.process.rssBytes).toBeGreaterThan(0);
    expect(t.sample.disk?.path).toBe(agent.modelsDir);
    expect(t.sample.disk!.freeBytes).toBeGreaterThan(0);
  });

  it('counts inferences per model and shows them in device show on request', async () => {
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    for (let i = 0; i < 3; i++) await agent.client.predict('acme/colors', red);
    const before = (await latest())!.sample.at;
    // The `telemetry` command (signed by the cloud's online key) samples now instead of waiting for the interval.
    await f.fleet.sendCommand('cam-t', 'telemetry');
    const t = await waitFor(
      'a sample with the 3 inferences',
      async () => {
        const l = await latest();
        return l && l.sample.at > before && l.sample.models.some((m) => m.total === 3) ? l : null;
      },
      15_000,
    );
    const m = t.sample.models.find((x) => x.model === 'acme/colors')!;
    expect(m).toMatchObject({ version: 1, total: 3, totalErrors: 0, errors: 0 });
    expect(m.latencyMs!.max).toBeGreaterThanOrEqual(m.latencyMs!.p50);

    const json = await runInProcess(['device', 'show', 'cam-t', '--json'], { cwd: f.root, env: f.env });
    expect(json.code).toBe(0);
    expect(
      json.json<{ telemetry: LatestTelemetry }>().telemetry.sample.models.find((x) => x.model === 'acme/colors')?.total,
    ).toBe(3);
    const human = await runInProcess(['device', 'show', 'cam-t'], { cwd: f.root, env: f.env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(
      /acme\/colors@1: \d+ inferences \(0 failed\) in the last \d+ s, 3 total \(0 failed\); latency mean/,
    );
    expect(human.stdout).toMatch(/models disk .*: [\d.]+ (GiB|MiB) free of/);
  });

  it('ignores telemetry that is malformed or names another device, keeping the last good sample', async () => {
    const kept = (await latest())!;
    const cfg = JSON.parse(await readFile(`${f.root}/agent-cam-t.json`, 'utf8')) as {
      credentials: { username: string; token: string };
    };
    // The device's own credentials: the broker lets it write its own telemetry topic only. The
    // broker keeps one connection per device (a new one takes over), so the agent stops first;
    // otherwise it and the probe would keep closing each other.
    await agent.stop();
    const c = await mqtt.connectAsync(f.cloud.mqttUrl!, {
      username: cfg.credentials.username,
      password: cfg.credentials.token,
      clientId: 'cam-t:probe',
      reconnectPeriod: 0,
    });
    try {
      await c.publishAsync(topics.telemetry('cam-t'), '{"v": 1, "deviceId": "cam-t", "at": "not a date"}', { qos: 1 });
      await c.publishAsync(
        topics.telemetry('cam-t'),
        JSON.stringify({
          ...kept.sample,
          deviceId: 'cam-other',
          at: new Date(Date.parse(kept.sample.at) + 5000).toISOString(),
          uptimeSeconds: 9999,
        }),
        { qos: 1 },
      );
      await c.publishAsync(topics.telemetry('cam-t'), 'garbage', { qos: 1 });
      // A valid one published after them proves the cloud processed the three first (one session,
      // in order); had it kept the other device's (newer) sample, this older one would not replace it.
      const good = {
        ...kept.sample,
        at: new Date(Date.parse(kept.sample.at) + 1000).toISOString(),
        uptimeSeconds: 4242,
      };
      await c.publishAsync(topics.telemetry('cam-t'), JSON.stringify(good), { qos: 1 });
      const t = await waitFor(
        'the valid sample',
        async () => ((await latest())?.sample.uptimeSeconds === 4242 ? latest() : null),
        10_000,
      );
      expect(t.sample.deviceId).toBe('cam-t');
      // And an older sample delivered late does not replace a newer one.
      await c.publishAsync(
        topics.telemetry('cam-t'),
        JSON.stringify({ ...kept.sample, at: new Date(0).toISOString(), uptimeSeconds: 1 }),
        { qos: 1 },
      );
      await c.publishAsync(
        topics.telemetry('cam-t'),
        JSON.stringify({ ...good, at: new Date(Date.parse(good.at) + 1000).toISOString(), uptimeSeconds: 4343 }),
        { qos: 1 },
      );
      await waitFor('the newest sample', async () => (await latest())?.sample.uptimeSeconds === 4343, 10_000);
    } finally {
      await c.endAsync();
    }
  });
});
