import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../agent/daemon/index.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { loadOrCreateCredentialKey } from '../../cloud-broker/fleet/device-credentials.js';
import { ClusterSecrets } from '../../cloud-broker/secrets/store.js';
import { createLogger, type Logger, silentLogger } from '../../protocol/log.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { closedPort } from '../helpers/daemon-process.js';
import { type Haproxy, missingHaproxy, startHaproxy } from '../helpers/engines/haproxy.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { startReplicaDevice } from '../helpers/replica-device.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { testDatabase } from '../helpers/test-db.js';

// Two replicas on DIFFERENT data dirs (as on two hosts) sharing one database (a SQLite file, or
// PostgreSQL under OUTPOST_TEST_DATABASE=postgres), one blob folder and Redis. The signing keys
// and the root chain live in the database, so a device provisioned through one replica accepts
// what the other signs, also after a rotation made through the first.
const tmp = useTempDir('outpost-replicas-secrets-', 'all');
const missing = missingRedis() ?? missingHaproxy();

describe.skipIf(skipForPackage(missing))(
  'replicas with their own data dirs share the keys through the database',
  () => {
    let redis: Redis;
    let lb: Haproxy;
    let a: Cloud;
    let b: Cloud;
    let admin: string;
    let database: string;
    const daemons: Daemon[] = [];
    const log: Logger = process.env.OUTPOST_TEST_LOG
      ? createLogger({ level: process.env.OUTPOST_TEST_LOG })
      : silentLogger;

    beforeAll(async () => {
      redis = await startRedis(tmp.dir);
      database = (await testDatabase()) ?? join(tmp.dir, 'shared.db');
      const ports = await Promise.all([0, 1, 2, 3].map(() => closedPort()));
      lb = await startHaproxy(tmp.dir, [
        { host: '127.0.0.1', httpPort: ports[0]!, mqttPort: ports[1]! },
        { host: '127.0.0.1', httpPort: ports[2]!, mqttPort: ports[3]! },
      ]);
      const common = {
        log,
        database,
        blobDir: join(tmp.dir, 'shared-blobs'),
        redisUrl: redis.url,
        publicHttpUrl: `http://127.0.0.1:${lb.httpPort}`,
        publicMqttUrl: `mqtt://127.0.0.1:${lb.mqttPort}`,
      };
      // Both at once on an empty database: the keys are created race-free, the first one's wins.
      [a, b] = await Promise.all([
        startCloud({ ...common, dataDir: join(tmp.dir, 'host-a'), httpPort: ports[0]!, mqttPort: ports[1]! }),
        startCloud({ ...common, dataDir: join(tmp.dir, 'host-b'), httpPort: ports[2]!, mqttPort: ports[3]! }),
      ]);
      // Each replica has its own admin token file; both hashes are in the shared database.
      admin = (await readFile(a.adminTokenFile, 'utf8')).trim();
    });

    afterAll(async () => {
      for (const d of daemons) await d.stop({ graceMs: 2000 }).catch(() => undefined);
      await a?.close();
      await b?.close();
      await lb?.stop();
      await redis?.stop();
    });

    const client = (c: Cloud, token = admin) => new FleetClient({ url: c.httpUrl, token });
    const envFor = (c: Cloud) => cleanEnv({ OUTPOST_CLOUD_URL: c.httpUrl, OUTPOST_TOKEN: admin, HOME: tmp.dir });
    async function cli(c: Cloud, args: string[], cwd = tmp.dir) {
      const run = await runInProcess([...args, '--json'], { cwd, env: envFor(c) });
      expect(run.code, run.stderr).toBe(0);
      return JSON.parse(run.stdout) as Record<string, unknown>;
    }
    const activeOn = (d: Daemon, model: string) =>
      d.reconciler.report().models.some((m) => m.id === model && m.state === 'active');
    const signerOf = (id: string) =>
      (JSON.parse(b.fleet.fleet.store.desiredOf(id)!.doc!) as { signatures: { keyid: string }[] }).signatures[0]!.keyid;

    async function publish(c: Cloud, id: string): Promise<void> {
      const dir = join(tmp.dir, `model-${id.replace('/', '-')}`);
      await writeModelFolder(dir, 'classifier', { id });
      await cli(c, ['model', 'publish'], dir);
    }

    it('both replicas sign with one key, and no key file is written to either data dir', async () => {
      const [sa, sb] = [a.fleet.trust.status(), b.fleet.trust.status()];
      expect(sa.onlineKeys).toHaveLength(1);
      expect(sb.onlineKeys).toEqual(sa.onlineKeys);
      // A token minted by B's first start works on A: only hashes are shared, each file is per host.
      const tokenB = (await readFile(b.adminTokenFile, 'utf8')).trim();
      expect(tokenB).not.toBe(admin);
      expect((await client(a, tokenB).trustStatus()).onlineKeys).toEqual(sa.onlineKeys);
      for (const c of [a, b]) {
        expect(existsSync(join(c.dataDir, 'signing'))).toBe(false);
        expect(existsSync(join(c.dataDir, 'broker'))).toBe(false);
      }
    });

    it('a device provisioned through A installs a deploy made through B, and one through B what A deploys', async () => {
      await publish(b, 'admin/colors');
      for (const [i, via] of [a, b].entries()) {
        const id = `dev-${i}`;
        const { agentConfig } = await client(via).provision(id, ['line']);
        // Each device on the other replica's broker than the one that will sign for it.
        const pin = (i === 0 ? a : b).mqttUrl;
        daemons.push(await startReplicaDevice(join(tmp.dir, id), agentConfig, log.child({ device: id }), pin));
      }
      await client(b).deploy({ model: 'admin/colors' }, { kind: 'device', value: 'dev-0' });
      await client(a).deploy({ model: 'admin/colors' }, { kind: 'device', value: 'dev-1' });
      await waitFor(
        'both devices active on admin/colors',
        () => daemons.every((d) => activeOn(d, 'admin/colors')),
        60_000,
      );
    }, 120_000);

    it('keys init and rotate-online through A: B signs with the new online key at once, and the devices accept it', async () => {
      const keys = join(tmp.dir, 'root-keys');
      const legacy = (await client(b).trustStatus()).onlineKeys[0]!.keyid;
      await cli(a, ['keys', 'init', '--out', keys, '--keys', '1', '--threshold', '1']);
      const rotated = await cli(a, ['keys', 'rotate-online', '--root-keys', keys]);
      // The rotation was acknowledged by A: B's very next read already follows it.
      const viaB = await client(b).trustStatus();
      expect(viaB.version).toBe(rotated.version);
      const online = viaB.onlineKeys[0]!.keyid;
      expect(a.fleet.trust.status().onlineKeys[0]!.keyid).toBe(online);
      expect(online).not.toBe(legacy);

      await publish(a, 'admin/shapes');
      await client(b).deploy({ model: 'admin/shapes' }, { kind: 'tag', value: 'line' });
      await waitFor(
        'both devices active on admin/shapes',
        () => daemons.every((d) => activeOn(d, 'admin/shapes')),
        60_000,
      );
      // Signed by B with the key A's rotation made, and the devices walked to that root.
      expect(signerOf('dev-0')).toBe(online);
      expect(signerOf('dev-1')).toBe(online);
      for (const id of ['dev-0', 'dev-1']) {
        const trust = JSON.parse(await readFile(join(tmp.dir, id, 'models', '.outpost', 'trust.json'), 'utf8')) as {
          signed: { version: number };
        };
        expect(trust.signed.version).toBe(rotated.version);
      }

      // Through the balancer the verb's calls (status, new online key, install) are spread over
      // both replicas: the key one replica made is the one the other installs.
      const lbEnv = cleanEnv({
        OUTPOST_CLOUD_URL: `http://127.0.0.1:${lb.httpPort}`,
        OUTPOST_TOKEN: admin,
        HOME: tmp.dir,
      });
      const again = await runInProcess(['keys', 'rotate-online', '--root-keys', keys, '--json'], {
        cwd: tmp.dir,
        env: lbEnv,
      });
      expect(again.code, again.stderr).toBe(0);
      const third = a.fleet.trust.status();
      expect(third.version).toBe((rotated.version as number) + 1);
      expect(b.fleet.trust.status().onlineKeys).toEqual(third.onlineKeys);
      expect(third.onlineKeys[0]!.keyid).not.toBe(online);
      expect(signerOf('dev-0')).toBe(third.onlineKeys[0]!.keyid);
      const walked = async (id: string) => {
        const t = await readFile(join(tmp.dir, id, 'models', '.outpost', 'trust.json'), 'utf8');
        return (JSON.parse(t) as { signed: { version: number } }).signed.version === third.version;
      };
      await waitFor(
        'both devices walked to the newest root',
        async () => (await walked('dev-0')) && walked('dev-1'),
        60_000,
      );
    }, 180_000);

    it('an old data dir with key files is imported once; one from another cloud is refused', async () => {
      // The old layout, rebuilt from what the cluster holds now (keys, roots v1..v3) plus a
      // device-credential key: as a data dir from before this change would hold them.
      const old = join(tmp.dir, 'old-data');
      const rows = new ClusterSecrets(b.db).since(0);
      expect(rows.map((r) => r.name)).toEqual(
        expect.arrayContaining(['signing/desired.key', 'signing/roots/3.root.json']),
      );
      const files = [
        ...rows,
        { name: 'broker/device-credentials.key', value: `${randomBytes(32).toString('base64')}\n` },
      ];
      for (const r of files) {
        await mkdir(dirname(join(old, r.name)), { recursive: true });
        await writeFile(join(old, r.name), r.value, { mode: 0o600 });
      }
      const fresh = join(tmp.dir, 'upgraded.db');
      const start = (dataDir: string) => startCloud({ log, dataDir, database: fresh, httpPort: 0, mqttPort: 0 });

      let c = await start(old);
      const head = new ClusterSecrets(c.db).head();
      try {
        expect(head).toBe(files.length);
        const st = c.fleet.trust.status();
        const want = b.fleet.trust.status();
        expect(st).toMatchObject({ initialized: true, version: want.version, onlineKeys: want.onlineKeys });
        expect(c.fleet.trust.rootJson(3)).toBe(b.fleet.trust.rootJson(3));
        expect(loadOrCreateCredentialKey(new ClusterSecrets(c.db)).toString('base64')).toBe(files.at(-1)!.value.trim());
      } finally {
        await c.close();
      }
      // Started again on the same files: nothing is imported twice, the state is the same.
      c = await start(old);
      try {
        expect(new ClusterSecrets(c.db).head()).toBe(head);
        expect(c.fleet.trust.status().onlineKeys).toEqual(b.fleet.trust.status().onlineKeys);
      } finally {
        await c.close();
      }
      // Another cloud's data dir on this database: refused, not signed with a key its devices lack.
      const other = join(tmp.dir, 'other-data');
      await mkdir(join(other, 'signing'), { recursive: true });
      const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await writeFile(join(other, 'signing', 'desired.key'), pem, { mode: 0o600 });
      await expect(start(other)).rejects.toMatchObject({ code: 'CLUSTER_SECRET_CONFLICT' });
    }, 60_000);
  },
);
