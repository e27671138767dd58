import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../protocol/agent-config.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import type { AgentConfigDraft } from '../../cloud-broker/fleet/provision.js';
import { cleanEnv, runInProcess, tempDir } from '../helpers/cli.js';
import { publishVersion, TestDevice, waitFor } from './fleet-helpers.js';
import { testDatabase } from '../helpers/test-db.js';

let cloud: Cloud;
let tmp: { dir: string; cleanup: () => Promise<void> };
let env: NodeJS.ProcessEnv;
const devices: TestDevice[] = [];

const cli = (...argv: string[]) => runInProcess(argv, { cwd: tmp.dir, env });

beforeAll(async () => {
  tmp = await tempDir('outpost-fleet-cli-');
  cloud = await startCloud({
    dataDir: path.join(tmp.dir, 'cloud'),
    host: '127.0.0.1',
    httpPort: 0,
    mqttPort: 0,
    database: await testDatabase(),
  });
  env = cleanEnv({ OUTPOST_DATA_DIR: cloud.dataDir, HOME: tmp.dir });
  publishVersion(cloud.db, 'alice/det', 'one');
  publishVersion(cloud.db, 'alice/det', 'two');
});

afterAll(async () => {
  await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
  await cloud?.close();
  await tmp?.cleanup();
});

async function provision(id: string, ...flags: string[]): Promise<TestDevice> {
  const out = path.join(tmp.dir, id);
  const r = await cli('device', 'provision', id, '--out', out, ...flags, '--json');
  expect(r.code, r.stderr + r.stdout).toBe(0);
  const file = path.join(out, 'agent.json');
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const config = JSON.parse(await readFile(file, 'utf8')) as AgentConfigDraft;
  expect(() => parseAgentConfig(config, file)).not.toThrow();
  const d = await new TestDevice(config).connect();
  devices.push(d);
  return d;
}

describe('outpost device / deploy / rollout / rollback against a real cloud', () => {
  it('provision writes a valid agent.json whose credentials and key work on the real broker', async () => {
    const d = await provision('cli-1', '--tag', 'lab', '--tag', 'floor-2');
    expect(d.config.cloud).toEqual({ http: cloud.httpUrl, mqtt: cloud.mqttUrl });
    expect(d.config.tags).toEqual(['lab', 'floor-2']);
    await waitFor('first signed document', () => d.last);
    const list = await cli('device', 'list', '--json');
    expect(list.json().devices.map((x: { id: string }) => x.id)).toEqual(['cli-1']);
  });

  it('deploy by tag, rollout status, rollback, through the CLI', async () => {
    const d = devices[0];
    const dep = await cli('deploy', 'alice/det@1', '--tag', 'lab', '--json');
    expect(dep.code, dep.stderr + dep.stdout).toBe(0);
    await waitFor('det@1', () => d.versionOf('alice/det') === 1);
    expect((await cli('deploy', 'alice/det', '--tag', 'lab')).code).toBe(0);
    await waitFor('det@2 (latest)', () => d.versionOf('alice/det') === 2);
    await d.report([{ id: 'alice/det', version: 2, activeVersion: 2, state: 'active' }]);
    await waitFor('report', () => cloud.fleet.fleet.reportedOf('cli-1'));
    const status = await cli('rollout', 'status', '--json');
    expect(status.json().devices[0]).toMatchObject({
      device: 'cli-1',
      converged: true,
      models: [{ id: 'alice/det', desired: 2, active: 2, state: 'active' }],
    });
    const human = await cli('rollout', 'status');
    expect(human.stdout).toContain('1/1 device(s) converged');
    const rb = await cli('rollback', 'alice/det', '--tag', 'lab', '--json');
    expect(rb.json()).toMatchObject({ from: 2, to: 1 });
    await waitFor('back on det@1', () => d.versionOf('alice/det') === 1);
    const show = await cli('device', 'show', 'cli-1', '--json');
    expect(show.json().desired.models[0]).toMatchObject({ id: 'alice/det', version: 1 });
  });

  it('tag and remove through the CLI', async () => {
    const d = await provision('cli-2');
    await waitFor('cli-2 first doc', () => d.last);
    expect((await cli('device', 'tag', 'cli-2', '--add', 'lab')).code).toBe(0);
    await waitFor('cli-2 joins lab and gets det@1', () => d.versionOf('alice/det') === 1);
    const closed = new Promise<void>((resolve) => d.client.once('close', () => resolve()));
    expect((await cli('device', 'remove', 'cli-2')).code).toBe(0);
    await closed;
    const show = await cli('device', 'show', 'cli-2', '--json');
    expect([show.code, show.errorCode()]).toEqual([4, 'DEVICE_NOT_FOUND']);
  });

  it.each([
    [['deploy', 'alice/det', '--json'], 2, 'USAGE'],
    [['deploy', 'alice/det', '--all', '--tag', 'x', '--json'], 2, 'USAGE'],
    [['deploy', 'alice/det@7', '--all', '--json'], 4, 'DEPLOY_VERSION_NOT_FOUND'],
    [['deploy', 'alice/det', '--device', 'ghost', '--json'], 4, 'DEVICE_NOT_FOUND'],
    [['rollback', 'alice/det', '--all', '--json'], 6, 'ROLLBACK_NO_PREVIOUS'],
    [['device', 'provision', 'cli-1', '--out', 'x', '--json'], 6, 'DEVICE_EXISTS'],
    [['device', 'provision', 'bad id', '--out', 'x', '--json'], 2, 'USAGE'],
    [['device', 'provision', 'cli-9', '--json'], 2, 'USAGE'],
    [['device', 'provision', 'cli-9', '--out', 'x', '--token', 'op_wrong', '--json'], 5, 'AUTH_TOKEN_INVALID'],
  ])('%j fails with exit %i and %s', async (argv, exit, code) => {
    const r = await cli(...(argv as string[]));
    expect([r.code, r.errorCode()]).toEqual([exit, code]);
  });
});
