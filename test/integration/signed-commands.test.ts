import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { AedesPublishPacket } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSigner, type Signer } from '../../cloud-broker/signing/sign.js';
import { ClusterSecrets } from '../../cloud-broker/secrets/store.js';
import { loadOrCreateSigner } from '../../cloud-broker/signing/keys.js';
import { buildCommand, type CommandSigned } from '../../protocol/command.js';
import { silentLogger } from '../../protocol/log.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import { topics } from '../../protocol/topics.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { runInProcess } from '../helpers/cli.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';

/**
 * D7 of issue 11: imperative commands are signed, expire and carry a nonce the device remembers.
 * A real cloud, its real aedes broker, and the real agent as a child process (so that "after a
 * restart" is a real kill -9 and a new process). Attacks are published into the broker the way
 * anyone with publish rights on the device's command topic would; commands are captured off the
 * broker as such a neighbour would capture them. Every refusal must leave the models as they were.
 */
const DEVICE = 'cmd-1';
const MODEL = 'acme/cmds';

describe('signed commands: unsigned, forged, expired and replayed commands are refused', () => {
  let f: TestFleet;
  let agent: AgentProcess;
  let config: string;
  let v2 = 0;
  /** Every packet the broker carried on the device's command and response topics. */
  const seen: { topic: string; payload: Buffer }[] = [];

  beforeAll(async () => {
    f = await startTestFleet();
    f.cloud.fleet.broker!.broker.on('publish', (p: AedesPublishPacket) => {
      if (p.topic.startsWith(topics.device(DEVICE))) seen.push({ topic: p.topic, payload: Buffer.from(p.payload) });
    });
    const v1 = await f.publish(MODEL, 'classifier', { labels: ['a1', 'b1', 'c1'] });
    v2 = await f.publish(MODEL, 'classifier', { labels: ['a2', 'b2', 'c2'] });
    const provisioned = await f.provision(DEVICE);
    config = await writeAgentConfig(provisioned, join(f.root, 'cmd-agent.json'), {
      modelsDir: join(f.root, 'models-cmd'),
      socket: join(f.root, 'cmd.sock'),
      extra: { trust: { minRefreshMs: 0 } },
    });
    agent = spawnAgent(config);
    for (const v of [v1, v2]) {
      await f.fleet.deploy({ model: `${MODEL}@${v}` }, { kind: 'device', value: DEVICE });
      await waitFor(`v${v} active`, () => activeVersion() === v, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${agent.output().slice(-3000)}`);
      });
    }
  }, 90_000);
  afterAll(async () => {
    await agent?.kill();
    await f?.close();
  });

  function activeVersion(): number | null | undefined {
    const r = f.cloud.fleet.fleet.reportedOf(DEVICE);
    return r?.models.find((m) => m.id === MODEL && m.state !== 'failed')?.activeVersion;
  }

  /** Publishes `payload` on commands/{cmd} as a neighbour with publish rights, and returns the device's answer. */
  async function inject(cmd: string, payload: string | Buffer): Promise<Record<string, unknown>> {
    const before = answers(cmd).length;
    await new Promise<void>((resolve, reject) =>
      f.cloud.fleet.broker!.broker.publish(
        {
          cmd: 'publish',
          topic: topics.command(DEVICE, cmd),
          payload: Buffer.from(payload),
          qos: 1,
          retain: false,
          dup: false,
        } as AedesPublishPacket,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    return waitFor(`an answer to ${cmd}`, () => answers(cmd)[before], 15_000);
  }

  function answers(cmd: string): Record<string, unknown>[] {
    return seen
      .filter((p) => p.topic === topics.response(DEVICE, cmd))
      .map((p) => JSON.parse(p.payload.toString()) as Record<string, unknown>);
  }

  /** The reported states the device published, oldest first. */
  function reports(): ReportedState[] {
    return seen.filter((p) => p.topic === topics.reported(DEVICE)).map((p) => JSON.parse(p.payload.toString()));
  }

  const codeIn = (answer: Record<string, unknown>) => (answer.error as { code?: string } | undefined)?.code;

  /** The key the cloud signs with, read from its database: what an attacker who stole it would hold. */
  const onlineKey = async (): Promise<Signer> => loadOrCreateSigner(new ClusterSecrets(f.cloud.db), silentLogger);

  const rollbackDoc = (over: Partial<CommandSigned> = {}): CommandSigned => ({
    ...buildCommand(DEVICE, 'rollback', { model: MODEL }, randomBytes(16).toString('hex'), new Date()),
    ...over,
  });

  let captured = '';

  it('an unsigned rollback (the D7 attack) is refused with COMMAND_UNSIGNED and rolls nothing back', async () => {
    const answer = await inject('rollback', JSON.stringify({ model: MODEL }));
    expect(answer).toMatchObject({ ok: false, error: { code: 'COMMAND_UNSIGNED' } });
    expect(activeVersion()).toBe(v2);
  });

  it("a rollback signed by a stranger's key: COMMAND_UNTRUSTED_KEY", async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const answer = await inject('rollback', JSON.stringify(createSigner(privateKey, publicKey).sign(rollbackDoc())));
    expect(codeIn(answer)).toBe('COMMAND_UNTRUSTED_KEY');
    expect(activeVersion()).toBe(v2);
  });

  it('a rollback signed by the online key but expired: COMMAND_EXPIRED', async () => {
    const doc = rollbackDoc({ issued: '2026-01-01T00:00:00Z', expires: '2026-01-01T00:05:00Z' });
    const answer = await inject('rollback', JSON.stringify((await onlineKey()).sign(doc)));
    expect(codeIn(answer)).toBe('COMMAND_EXPIRED');
    expect(activeVersion()).toBe(v2);
  });

  it('`outpost device command rollback` sends a signed command the device runs once', async () => {
    const before = answers('rollback').length;
    const run = await runInProcess(['device', 'command', DEVICE, 'rollback', '--model', MODEL, '--json'], {
      cwd: f.root,
      env: f.env,
    });
    expect(run.code, run.stderr).toBe(0);
    const sent = run.json<{ nonce: string; expires: string }>();
    const answer = await waitFor('the rollback answer', () => answers('rollback')[before], 15_000);
    expect(answer).toMatchObject({ ok: true, nonce: sent.nonce, from: v2, to: v2 - 1 });
    await waitFor('rolled back in the report', () => activeVersion() === v2 - 1);
    // The cloud shows the answer too (device show).
    const shown = await f.fleet.showDevice(DEVICE);
    expect(shown.commands?.find((c) => c.command === 'rollback')).toMatchObject({ ok: true, nonce: sent.nonce });
    captured = seen
      .find((p) => p.topic === topics.command(DEVICE, 'rollback') && p.payload.toString().includes(sent.nonce))!
      .payload.toString();
    expect(captured).toContain('"signatures"');
  });

  it('the captured command published again: COMMAND_REPLAYED', async () => {
    const answer = await inject('rollback', captured);
    expect(codeIn(answer)).toBe('COMMAND_REPLAYED');
    expect(activeVersion()).toBe(v2 - 1);
  });

  it('the captured command with its arguments changed: COMMAND_BAD_SIGNATURE', async () => {
    const env = JSON.parse(captured) as { signed: CommandSigned };
    env.signed.args.model = 'acme/other';
    env.signed.nonce = randomBytes(16).toString('hex');
    expect(codeIn(await inject('rollback', JSON.stringify(env)))).toBe('COMMAND_BAD_SIGNATURE');
  });

  it('the captured command on another command topic: COMMAND_WRONG_DEVICE', async () => {
    expect(codeIn(await inject('sync', captured))).toBe('COMMAND_WRONG_DEVICE');
  });

  it('after kill -9 and a restart of the agent, the captured command is still refused as replayed', async () => {
    const killed = reports().at(-1)!.startedAt;
    await agent.kill('SIGKILL');
    agent = spawnAgent(config);
    // The restarted agent's first report (what it rebuilt from disk): the desired state still
    // asks for v2 (the retained document, unchanged), so only a persisted pin keeps v1. Asserting on
    // that report, not on whatever report the cloud holds at some moment, makes the outcome
    // independent of how fast the restarted agent would re-activate v2 without the pin.
    const first = await waitFor(
      'the restarted agent reported',
      () => reports().find((r) => r.startedAt !== killed),
      30_000,
    );
    expect(first.models.find((m) => m.id === MODEL)).toMatchObject({
      state: 'rolled-back',
      version: v2,
      activeVersion: v2 - 1,
      error: { code: 'SYNC_PINNED_BY_ROLLBACK' },
    });
    const answer = await inject('rollback', captured);
    expect(codeIn(answer)).toBe('COMMAND_REPLAYED');
    // A fresh signed command still works after the restart.
    const run = await runInProcess(['device', 'command', DEVICE, 'report', '--json'], { cwd: f.root, env: f.env });
    expect(run.code, run.stderr).toBe(0);
    await waitFor('the report answer', () => answers('report').some((a) => a.ok === true), 15_000);
    // Still v1 in the report the command asked for.
    expect(
      reports()
        .at(-1)!
        .models.find((m) => m.id === MODEL),
    ).toMatchObject({ activeVersion: v2 - 1 });
  }, 60_000);
});
