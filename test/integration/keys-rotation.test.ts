import { generateKeyPairSync } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { readRootKeys, signRoot } from '../../cloud-broker/signing/root-keys.js';
import { expiresIn, planRotateOnline } from '../../cloud-broker/signing/root-plan.js';
import { ClusterSecrets } from '../../cloud-broker/secrets/store.js';
import { createSigner, type Signer } from '../../cloud-broker/signing/sign.js';
import type { DesiredSigned } from '../../protocol/desired-state.js';
import { parseRoot, serializeRoot, tufKey, type RootMetadata } from '../../protocol/trust-root.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { runInProcess } from '../helpers/cli.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { startHostileProxy, type HostileProxy } from '../helpers/hostile-proxy.js';

/**
 * Every rotation path of the root of trust end to end: the real cloud (HTTP, aedes, signing),
 * the real `outpost keys` verbs, and real agent processes that are never re-provisioned:
 *   old  provisioned before `keys init` (agent.json holds only the legacy key: implicit root v1)
 *   new  provisioned after it (agent.json holds root v2), offline across three rotations
 *   mitm provisioned after the rotations, its cloud.http behind a hostile proxy that serves
 *        forged roots (what a compromised mirror or network path would serve)
 */
const MODEL = 'acme/keys';

describe('root of trust: rotations reach untouched devices, forged roots and revoked keys are refused', () => {
  let f: TestFleet;
  let proxy: HostileProxy;
  const agents = new Map<string, AgentProcess>();
  const configs = new Map<string, string>();
  const keysDir = (n: string) => join(f.root, `root-keys-${n}`);
  let labels = 0;

  beforeAll(async () => {
    f = await startTestFleet();
    proxy = await startHostileProxy(f.cloud.httpUrl);
    await f.publish(MODEL, 'classifier', { labels: ['k1a', 'k1b', 'k1c'] });
    await provision('old');
    // Exactly what provisioning wrote before roots existed: the legacy key and nothing else.
    const legacy = JSON.parse(await readFile(configs.get('old')!, 'utf8')) as Record<string, unknown>;
    if ('trustedRoot' in legacy || (legacy.trustedKeys as unknown[]).length !== 1)
      throw new Error('the old device must be provisioned like a pre-root agent.json');
    start('old');
    await deployAndConverge(['old']);
  }, 60_000);
  afterAll(async () => {
    for (const a of agents.values()) await a.kill();
    await proxy?.close();
    await f?.close();
  });

  async function provision(id: string, http?: string): Promise<void> {
    const provisioned = await f.provision(id);
    const base = JSON.parse(await readFile(provisioned, 'utf8')) as { cloud: Record<string, unknown> };
    configs.set(
      id,
      await writeAgentConfig(provisioned, join(f.root, `${id}-agent.json`), {
        modelsDir: join(f.root, `models-${id}`),
        socket: join(f.root, `${id}.sock`),
        extra: { trust: { minRefreshMs: 0 }, ...(http ? { cloud: { ...base.cloud, http } } : {}) },
      }),
    );
  }

  function start(id: string): void {
    agents.set(id, spawnAgent(configs.get(id)!));
  }

  const activeOn = (id: string): number | null | undefined =>
    f.cloud.fleet.fleet.reportedOf(id)?.models.find((m) => m.id === MODEL)?.activeVersion;

  /** Publishes a new version and deploys it to the whole fleet. */
  async function deployNew(): Promise<number> {
    const v = await f.publish(MODEL, 'classifier', { labels: [`l${++labels}a`, `l${labels}b`, `l${labels}c`] });
    await f.fleet.deploy({ model: `${MODEL}@${v}` }, { kind: 'all', value: '*' });
    return v;
  }

  /** Publishes a new version, deploys it to the whole fleet and waits for `ids` to run it. */
  async function deployAndConverge(ids: string[]): Promise<number> {
    const v = await deployNew();
    for (const id of ids)
      await waitFor(`${id} active on v${v}`, () => activeOn(id) === v, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${agents.get(id)?.output().slice(-4000)}`);
      });
    return v;
  }

  async function cli(args: string[]): Promise<{ code: number; json: Record<string, unknown> }> {
    const run = await runInProcess([...args, '--json'], { cwd: f.root, env: f.env });
    return { code: run.code, json: JSON.parse(run.stdout || run.stderr || '{}') as Record<string, unknown> };
  }

  const status = () => f.fleet.trustStatus();
  /** The root version a device persisted after walking; null when it never walked past agent.json's. */
  const trustedVersion = async (id: string): Promise<number | null> => {
    const file = join(f.root, `models-${id}`, '.outpost', 'trust.json');
    const bytes = await readFile(file).catch(() => null);
    return bytes ? parseRoot(bytes).signed.version : null;
  };

  /** A desired state for `id`, one revision ahead, signed by `signer`. */
  function craft(id: string, signer: Signer): string {
    const signed = structuredClone(f.cloud.fleet.fleet.signedOf(id)) as DesiredSigned;
    signed.revision += 1;
    return JSON.stringify(signer.sign(signed));
  }

  async function refusedWith(id: string, code: string): Promise<void> {
    await waitFor(
      `${id} reports ${code}`,
      async () => (await f.fleet.showDevice(id)).reported?.desiredError?.code === code,
    );
  }

  /** The online key whose private half the cloud keeps, by keyid (what an attacker who took the cloud's database holds). */
  async function cloudKey(keyid: string): Promise<Signer> {
    const s = f.cloud.fleet.trust.heldSigner(keyid);
    if (!s) throw new Error(`no key ${keyid} in the cloud's database`);
    return s;
  }

  let legacyKeyid = '';
  const onlineHistory: string[] = [];

  it('keys init: 2-of-3 root keys in a 0700 folder, root v2 over the legacy root; the old device keeps converging', async () => {
    const help = await runInProcess(['keys', 'init', '--help'], { cwd: f.root, env: f.env });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--threshold');
    expect((await cli(['keys', 'show'])).json).toMatchObject({ initialized: false, version: 1 });
    legacyKeyid = (await status()).onlineKeys[0].keyid;

    const init = await cli(['keys', 'init', '--out', keysDir('a'), '--keys', '3', '--threshold', '2']);
    expect(init.code, JSON.stringify(init.json)).toBe(0);
    expect(init.json).toMatchObject({ version: 2, threshold: 2, onlineChanged: false });
    expect((await stat(keysDir('a'))).mode & 0o777).toBe(0o700);
    const files = await readdir(keysDir('a'));
    expect(files).toHaveLength(3);
    for (const n of files) expect((await stat(join(keysDir('a'), n))).mode & 0o777).toBe(0o600);
    const human = await runInProcess(['keys', 'show'], { cwd: f.root, env: f.env });
    expect(human.stdout).toMatch(/root v2, expires \S+ \(in 36[45] days\)\n {2}root keys \(threshold 2 of 3\)/);
    const s = await status();
    expect(s).toMatchObject({ initialized: true, version: 2, threshold: 2 });
    expect(s.onlineKeys.map((k) => k.keyid)).toEqual([legacyKeyid]);
    // The root keys are nowhere in the cloud (its database holds the online keys and the roots,
    // with only the root keys' public halves), nor in its data dir.
    const held = new ClusterSecrets(f.cloud.db).since(0).map((r) => r.name);
    expect(
      held.every((n) => /^signing\/(desired\.key|online\/[0-9a-f]{64}\.key|roots\/\d+\.root\.json)$/.test(n)),
    ).toBe(true);
    const keyRows = new ClusterSecrets(f.cloud.db).since(0).filter((r) => r.name.endsWith('.key'));
    expect(keyRows.map((r) => r.name)).toEqual(['signing/desired.key']);
    const cloudFiles = await readdir(f.cloud.dataDir, { recursive: true });
    expect(cloudFiles.some((n) => String(n).includes('root-'))).toBe(false);
    // A second init is refused.
    expect((await cli(['keys', 'init', '--out', keysDir('x')])).code).toBe(6);

    await provision('new');
    const cfg = JSON.parse(await readFile(configs.get('new')!, 'utf8')) as {
      trustedRoot?: { signed: { version: number } };
    };
    expect(cfg.trustedRoot?.signed.version).toBe(2);
    start('new');
    await deployAndConverge(['old', 'new']);
  }, 60_000);

  it('rotate-online: the cloud re-signs with a new key, both devices walk the chain and trust it untouched', async () => {
    const res = await cli(['keys', 'rotate-online', '--root-keys', keysDir('a')]);
    expect(res.code, JSON.stringify(res.json)).toBe(0);
    expect(res.json).toMatchObject({ version: 3, onlineChanged: true });
    expect(res.json.resigned as number).toBeGreaterThanOrEqual(2);
    const s = await status();
    onlineHistory.push(legacyKeyid, s.onlineKeys[0].keyid);
    expect(s.revoked).toEqual([legacyKeyid]);
    await deployAndConverge(['old', 'new']);
    // The old device walked from its implicit root v1 (2, 3) and persisted where it got to.
    expect(await trustedVersion('old')).toBe(3);
    expect(await trustedVersion('new')).toBe(3);
  }, 60_000);

  it('a device offline across rotate-root, revoke and rotate-online catches up when it returns', async () => {
    await agents.get('new')!.kill('SIGTERM');
    agents.delete('new');
    const rr = await cli([
      'keys',
      'rotate-root',
      '--root-keys',
      keysDir('a'),
      '--out',
      keysDir('b'),
      '--keys',
      '2',
      '--threshold',
      '2',
    ]);
    expect(rr.code, JSON.stringify(rr.json)).toBe(0);
    expect(rr.json).toMatchObject({ version: 4, onlineChanged: false });
    // The old root keys no longer sign: rotate-online with them alone is refused before the cloud is asked.
    const stale = await cli(['keys', 'rotate-online', '--root-keys', keysDir('a')]);
    expect(stale.code).toBe(2);
    expect(stale.json).toMatchObject({ error: { code: 'TRUST_KEYS_MISSING' } });

    const rv = await cli(['keys', 'revoke', onlineHistory[1].slice(0, 16), '--root-keys', keysDir('b')]);
    expect(rv.code, JSON.stringify(rv.json)).toBe(0);
    expect(rv.json).toMatchObject({ version: 5, revoked: onlineHistory[1] });
    const ro = await cli(['keys', 'rotate-online', '--root-keys', keysDir('b')]);
    expect(ro.json).toMatchObject({ version: 6 });
    const s = await status();
    expect(s.revoked).toEqual(expect.arrayContaining(onlineHistory));
    expect(s.revoked).toHaveLength(3);

    const v = await deployAndConverge(['old']);
    start('new');
    await waitFor('new catches up', () => activeOn('new') === v, 30_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${agents.get('new')?.output().slice(-4000)}`);
    });
    expect(await trustedVersion('new')).toBe(6);
    expect(await trustedVersion('old')).toBe(6);
  }, 90_000);

  it('documents signed by a revoked key are refused with DESIRED_KEY_REVOKED; the models stay', async () => {
    const before = activeOn('old');
    for (const keyid of [onlineHistory[1], legacyKeyid]) {
      await f.cloud.fleet.publisher.publishDesired('old', craft('old', await cloudKey(keyid)));
      await refusedWith('old', 'DESIRED_KEY_REVOKED');
      expect(activeOn('old')).toBe(before);
      // Back to the genuine retained document, so the next round is seen on its own.
      await f.cloud.fleet.fleet.republishAll();
      await waitFor('refusal cleared', async () => !(await f.fleet.showDevice('old')).reported?.desiredError);
    }
  }, 60_000);

  it('a stolen online key that signed revision 2^40 is recovered from by revoking it (fast-forward recovery)', async () => {
    const stolen = await cloudKey((await status()).onlineKeys[0].keyid);
    const forged = structuredClone(f.cloud.fleet.fleet.signedOf('old')) as DesiredSigned;
    forged.revision = 2 ** 40;
    await f.cloud.fleet.publisher.publishDesired('old', JSON.stringify(stolen.sign(forged)));
    await waitFor(
      'the forged revision applied',
      () => f.cloud.fleet.fleet.reportedOf('old')?.appliedRevision === 2 ** 40,
    );
    // The cloud's genuine revisions are now below the device's floor.
    const v = await deployNew();
    await refusedWith('old', 'DESIRED_ROLLBACK');
    const ro = await cli(['keys', 'revoke', stolen.keyid, '--root-keys', keysDir('b')]);
    expect(ro.code, JSON.stringify(ro.json)).toBe(0);
    await waitFor('old converges after the revocation', () => activeOn('old') === v, 30_000);
    expect(f.cloud.fleet.fleet.reportedOf('old')!.appliedRevision).toBeLessThan(2 ** 40);
    // The stolen key's documents are refused from now on, the forged one included.
    await f.cloud.fleet.publisher.publishDesired('old', JSON.stringify(stolen.sign({ ...forged, revision: 2 ** 41 })));
    await refusedWith('old', 'DESIRED_KEY_REVOKED');
    await f.cloud.fleet.fleet.republishAll();
  }, 60_000);

  it('the cloud refuses a root a device would refuse (threshold not met, wrong version)', async () => {
    const current = parseRoot((await status()).root);
    const held = [...(await readRootKeys([keysDir('b')])).values()];
    const online = tufKey(generateKeyPairSync('ed25519').publicKey);
    const admin = new FleetClient({ url: f.cloud.httpUrl, token: f.adminToken });
    const one = planRotateOnline(current, online, expiresIn(30));
    signRoot(one, held[0]);
    expect(await codeOfRejection(admin.installRoot(one.toJSON()))).toBe('TRUST_ROOT_THRESHOLD');
    const skip = withVersion(planRotateOnline(current, online, expiresIn(30)), current.signed.version + 2);
    for (const k of held) signRoot(skip, k);
    expect(await codeOfRejection(admin.installRoot(skip.toJSON()))).toBe('TRUST_ROOT_VERSION');
    expect((await status()).version).toBe(current.signed.version);
  });

  it('a device refuses forged roots served on its path: threshold not met, wrong version, oversized', async () => {
    await provision('mitm', proxy.url);
    start('mitm');
    // Its downloads go to the blob base in the signed document, another origin than its (proxied)
    // cloud.http, so it sends them no credentials and installs nothing: what matters here is that
    // it verified and applied the genuine document with the root of its agent.json.
    await waitFor(
      'mitm applied its desired state',
      () => f.cloud.fleet.fleet.reportedOf('mitm')?.appliedRevision === f.cloud.fleet.fleet.signedOf('mitm')?.revision,
      30_000,
    );
    const before = activeOn('mitm');
    // The attacker's online key, which each forged root would make trusted.
    const attacker = (() => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      return createSigner(privateKey, publicKey);
    })();
    const current = parseRoot((await status()).root);
    const held = [...(await readRootKeys([keysDir('b')])).values()];
    const forged = (version: number, signers: typeof held): Buffer => {
      const r = withVersion(planRotateOnline(current, tufKey(attacker.publicKeyPem), expiresIn(30)), version);
      for (const k of signers) signRoot(r, k);
      return Buffer.from(serializeRoot(r));
    };
    const next = current.signed.version + 1;
    const cases: [string, Buffer][] = [
      ['TRUST_ROOT_THRESHOLD', forged(next, held.slice(0, 1))],
      ['TRUST_ROOT_VERSION', forged(next + 1, held)],
      ['TRUST_ROOT_TOO_LARGE', Buffer.alloc(600_000, 0x20)],
    ];
    for (const [code, bytes] of cases) {
      proxy.roots.set(next, bytes);
      const asked = proxy.requests.length;
      await f.cloud.fleet.publisher.publishDesired('mitm', craft('mitm', attacker));
      await refusedWith('mitm', code);
      expect(proxy.requests.slice(asked)).toContain(next);
      expect(activeOn('mitm')).toBe(before);
      // Nothing forged was persisted: the device still trusts the root of its agent.json.
      expect(await trustedVersion('mitm')).toBeNull();
    }
    // Without the forged root the attacker's document is simply by an unknown key.
    proxy.roots.clear();
    await f.cloud.fleet.publisher.publishDesired('mitm', craft('mitm', attacker));
    await refusedWith('mitm', 'DESIRED_UNTRUSTED_KEY');
    expect(activeOn('mitm')).toBe(before);
  }, 60_000);
});

/** A copy of an unsigned root with another version number. */
function withVersion(root: RootMetadata, version: number): RootMetadata {
  const json = JSON.parse(serializeRoot(root)) as { signed: { version: number } };
  json.signed.version = version;
  return parseRoot(json);
}
