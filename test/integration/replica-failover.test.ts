import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb } from '../../cloud-broker/db/index.js';
import { FLEET_LEADER, LeaseStore } from '../../cloud-broker/db/lease.js';
import type { FleetPage } from '../../cloud-broker/fleet/fleet-view.js';
import type { RolloutView } from '../../cloud-broker/fleet/rollout-types.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { closedPort } from '../helpers/daemon-process.js';
import { type Haproxy, missingHaproxy, startHaproxy } from '../helpers/engines/haproxy.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { cloudProcess, type CloudProcess } from '../helpers/rollout-fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { testDatabase } from '../helpers/test-db.js';

/**
 * kill -9 of the replica that leads, mid-rollout (docs/scale.md, "Run-once work"). Two real
 * `outpost cloud start` processes, each with its own data dir (as on two hosts), share one
 * database (a SQLite file, or one PostgreSQL database under OUTPOST_TEST_DATABASE=postgres,
 * `npm run test:pg`), one blob folder and one Redis, behind a real haproxy; six real agent processes connect through the balancer, so about half
 * are on each replica. A staged rollout (batches of 2, soak) is started; once its first batch is
 * out, the replica holding the fleet-leader lease is SIGKILLed. The survivor must take the lease,
 * its scheduler must finish the rollout, the killed replica's devices must come back through the
 * balancer, every device's last report must be in the fleet view, and no device may be sent
 * twice. The lease is short here (2 s, renewed every 400 ms) so the takeover comes soon; waits
 * are on states, never on the clock.
 */
const N = 6;
const IDS = Array.from({ length: N }, (_, i) => `f-${i + 1}`);
const MODEL = 'acme/failover';
const LEASE = { OUTPOST_CLOUD_LEASE_TTL_MS: '2000', OUTPOST_CLOUD_LEASE_RENEW_MS: '400', OUTPOST_LOG_LEVEL: 'info' };
const missing = missingRedis() ?? missingHaproxy();

interface Health {
  replica: string | null;
  isLeader: boolean;
  leader: { replica: string | null; epoch: number };
}

let root: string;
let redis: Redis;
let lb: Haproxy;
const replicas: CloudProcess[] = [];
const agents = new Map<string, AgentProcess>();
let lbHttp: string;
let token: string;
let database: string;

/** A new TCP connection per call: the balancer picks a replica per connection, and fetch keeps them alive. */
const health = (base: string): Promise<Health> =>
  new Promise((resolve, reject) => {
    http
      .get(`${base}/v1/health`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body) as Health);
          } catch (err) {
            reject(err);
          }
        });
      })
      .on('error', reject);
  });
const api = async <T>(path: string): Promise<T> => {
  const r = await fetch(`${lbHttp}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json() as Promise<T>;
};
const cli = (cwd: string, ...argv: string[]) =>
  runInProcess(argv, { cwd, env: cleanEnv({ OUTPOST_CLOUD_URL: lbHttp, OUTPOST_TOKEN: token, HOME: root }) });

async function publish(tag: string): Promise<number> {
  const dir = join(root, `model-${tag}`);
  await writeModelFolder(dir, 'classifier', { id: MODEL });
  await writeFile(join(dir, 'labels.txt'), `red-${tag}\ngreen-${tag}\nblue-${tag}\n`);
  const run = await cli(dir, 'model', 'publish', '--json', '--force');
  if (run.code !== 0) throw new Error(`publish failed: ${run.stdout} ${run.stderr}`);
  return run.json<{ version: number }>().version;
}

async function fleetRows(): Promise<FleetPage['devices']> {
  return (await api<FleetPage>('/v1/fleet/devices?limit=200')).devices;
}

async function allActive(version: number): Promise<void> {
  await waitFor(
    `every device active on ${MODEL}@${version}`,
    async () => {
      const rows = await fleetRows();
      return IDS.every((id) =>
        rows.find((d) => d.device === id)?.models.some((m) => m.id === MODEL && m.active === version),
      );
    },
    120_000,
  );
}

const connects = (id: string): number => agents.get(id)!.output().split('connected to broker').length - 1;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-fo-'));
  if (missing) return;
  redis = await startRedis(root);
  const ports = await Promise.all([0, 1, 2, 3].map(() => closedPort()));
  lb = await startHaproxy(root, [
    { host: '127.0.0.1', httpPort: ports[0]!, mqttPort: ports[1]! },
    { host: '127.0.0.1', httpPort: ports[2]!, mqttPort: ports[3]! },
  ]);
  lbHttp = `http://127.0.0.1:${lb.httpPort}`;
  const shared = [
    '--host',
    '127.0.0.1',
    '--redis',
    redis.url,
    '--blob-dir',
    join(root, 'shared-blobs'),
    '--public-http',
    lbHttp,
    '--public-mqtt',
    `mqtt://127.0.0.1:${lb.mqttPort}`,
  ];
  database = (await testDatabase()) ?? join(root, 'shared.db');
  // One after the other: the first creates the signing key the second reads from the database.
  // Each writes its own admin token file; both tokens' hashes are in the shared database.
  for (const i of [0, 1])
    replicas.push(
      await cloudProcess(join(root, `host-${i}`), root, {
        httpPort: ports[2 * i]!,
        mqttPort: ports[2 * i + 1]!,
        args: shared,
        database,
        env: LEASE,
      }),
    );
  token = replicas[0]!.token;
  // Both replicas in the balancer's pool before any device connects, so devices spread over both.
  const seen = new Set<string>();
  await waitFor('the balancer reaches both replicas', async () => {
    seen.add((await health(lbHttp)).replica ?? '');
    return seen.size >= 2;
  });

  for (const id of IDS) {
    const { agentConfig } = await replicas[0]!.fleet.provision(id, ['fleet']);
    expect(agentConfig.cloud.mqtt).toBe(`mqtt://127.0.0.1:${lb.mqttPort}`);
    const provisioned = join(root, `${id}.provisioned.json`);
    await writeFile(provisioned, JSON.stringify(agentConfig));
    const config = await writeAgentConfig(provisioned, join(root, `${id}.json`), {
      modelsDir: join(root, `models-${id}`),
      socket: join(root, `${id}.sock`),
    });
    agents.set(id, spawnAgent(config));
  }
  const v1 = await publish('v1');
  const run = await cli(root, 'deploy', `${MODEL}@${v1}`, '--tag', 'fleet', '--json');
  expect(run.code, run.stderr).toBe(0);
  await allActive(v1);
}, 300_000);

afterAll(async () => {
  await Promise.all([...agents.values()].map((a) => a.kill('SIGKILL')));
  for (const r of replicas) await r.stop();
  await lb?.stop();
  await redis?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(skipForPackage(missing))('replica failover', () => {
  it('kill -9 of the leading replica mid-rollout: the survivor takes the lease and finishes; no report lost, no device sent twice', async () => {
    // One leader among the two, and both agree on who.
    const [h0, h1] = await Promise.all(replicas.map((r) => health(r.http)));
    expect([h0!.isLeader, h1!.isLeader].filter(Boolean)).toHaveLength(1);
    expect(h0!.leader).toEqual(h1!.leader);
    const leaderIdx = h0!.isLeader ? 0 : 1;
    const leader = replicas[leaderIdx]!;
    const survivor = replicas[1 - leaderIdx]!;
    const survivorId = (await health(survivor.http)).replica!;
    const epochBefore = h0!.leader.epoch;

    const v2 = await publish('v2');
    const revBefore = Object.fromEntries((await fleetRows()).map((d) => [d.device, d.revision]));
    const run = await cli(
      root,
      'deploy',
      `${MODEL}@${v2}`,
      '--tag',
      'fleet',
      '--batch-size',
      '2',
      '--soak',
      '2s',
      '--device-timeout',
      '120s',
      '--json',
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const id = run.json<{ rollout: { id: number } }>().rollout.id;
    const rollout = async () => (await api<{ rollout: RolloutView }>(`/v1/rollouts/${id}`)).rollout;
    const firstOut = await waitFor('the first batch sent', async () => {
      const r = await rollout();
      return r.batches[0]!.state !== 'pending' ? r : null;
    });
    expect(firstOut.state).toBe('running');
    const connectsBefore = new Map(IDS.map((d) => [d, connects(d)]));

    await leader.kill();

    // The survivor takes the lease with a new epoch, and says so, directly and through the balancer.
    const after = await waitFor('the survivor leads', async () => {
      const h = await health(survivor.http);
      return h.isLeader ? h : null;
    });
    expect(after.leader.replica).toBe(survivorId);
    expect(after.leader.epoch).toBeGreaterThan(epochBefore);
    // The lease row in the database the two were given says the same (so they shared that one).
    const db = openDb(database);
    try {
      expect(new LeaseStore(db).read(FLEET_LEADER)).toMatchObject({ holder: survivorId, epoch: after.leader.epoch });
    } finally {
      db.close();
    }
    await waitFor('the balancer answers with the survivor as leader', async () => {
      const h = await health(lbHttp);
      return h.replica === survivorId && h.leader.replica === survivorId;
    });

    const done = await waitFor(
      'the rollout ends',
      async () => {
        const r = await rollout();
        return r.state === 'done' || r.state === 'aborted' ? r : null;
      },
      180_000,
    );
    const failed = done.batches.flatMap((b) => b.devices).filter((d) => d.state !== 'succeeded');
    expect(
      done.state,
      `${JSON.stringify(done.reason)} ${JSON.stringify(failed)} ${failed.map((d) => agents.get(d.device)?.output().slice(-6000)).join('\n')}`,
    ).toBe('done');
    expect(done.counts).toMatchObject({ total: N, succeeded: N, failed: 0 });

    // The devices that were on the killed replica came back through the balancer.
    await allActive(v2);
    const moved = IDS.filter((d) => connects(d) > connectsBefore.get(d)!);
    expect(moved.length, 'devices that reconnected after the kill').toBeGreaterThan(0);

    // No report lost: the fleet view holds every device's last report (its applied revision is
    // the newest signed one, every model active) and every device is online again.
    const rows = await fleetRows();
    for (const dev of IDS) {
      const row = rows.find((d) => d.device === dev)!;
      expect(row.converged, dev).toBe(true);
      expect(row.appliedRevision, dev).toBe(row.revision);
      expect(row.status, dev).toBe('online');
    }

    // No device sent twice: each batch once, each device once, each device's revision moved once.
    const audit = await api<{ entries: { action: string; devices: string[]; details: { batch?: number } }[] }>(
      `/v1/audit?rollout=${id}`,
    );
    const sent = audit.entries.filter((e) => e.action === 'rollout.batch-sent');
    expect(sent.map((e) => e.details.batch).sort()).toEqual([0, 1, 2]);
    const sentDevices = sent.flatMap((e) => e.devices);
    expect(new Set(sentDevices).size).toBe(sentDevices.length);
    expect(sentDevices.sort()).toEqual([...IDS].sort());
    for (const row of rows) expect(row.revision, row.device).toBe(revBefore[row.device]! + 1);

    // The leadership changes are in the replicas' logs.
    await survivor.stop();
    expect(survivor.output()).toContain('this replica is now the fleet leader');
    expect(leader.output()).toContain('this replica is now the fleet leader');
  }, 300_000);
});
