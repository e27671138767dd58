import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { handleCommand } from '../../agent/daemon/commands.js';
import { createCommandGate } from '../../agent/sync/command-gate.js';
import { NonceStore } from '../../agent/sync/nonce-store.js';
import { TrustStore } from '../../agent/sync/trust-store.js';
import { createTelemetry } from '../../agent/telemetry/index.js';
import type { Reconciler } from '../../agent/sync/reconciler.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { buildCommand } from '../../protocol/command.js';
import { silentLogger } from '../../protocol/log.js';
import type { CommandName } from '../../protocol/topics.js';
import { legacyRoot } from '../../protocol/trust-root.js';

/**
 * The command table the daemon answers on responses/{cmd}: every command gets exactly one answer,
 * a bad payload or an unknown name a coded refusal. Commands pass the real gate (signature by
 * the trusted key, nonce store in a temp folder). The reconciler's commands are covered end to
 * end in test/e2e/sync.test.ts and test/integration/signed-commands.test.ts; here the table itself.
 */
describe('device commands', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const cloud = (() => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return createSigner(privateKey, publicKey);
  })();
  const signed = (cmd: CommandName, args: Record<string, string> = {}) =>
    Buffer.from(
      JSON.stringify(cloud.sign(buildCommand('cam-1', cmd, args, randomBytes(16).toString('hex'), new Date()))),
    );

  async function deps() {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-cmd-'));
    dirs.push(dir);
    const samples: unknown[] = [];
    const telemetry = createTelemetry({
      deviceId: 'cam-1',
      modelsDir: dir,
      log: silentLogger,
      telemetry: { intervalSeconds: 3600, enabled: true },
      publish: (s) => {
        samples.push(s);
      },
    });
    const trust = new TrustStore({
      initial: legacyRoot([cloud.trustedKey()]),
      path: join(dir, 'trust.json'),
      fetchRoot: async () => null,
      log: silentLogger,
      minRefreshMs: 0,
    });
    const gate = createCommandGate({ deviceId: 'cam-1', trust, nonces: new NonceStore(join(dir, 'nonces.json')) });
    // Not reached by the commands under test: a call would throw and fail the test.
    const reconciler = {} as Reconciler;
    return { samples, deps: { gate, reconciler, telemetry, log: silentLogger } };
  }

  it('telemetry takes and publishes a sample now, echoing the nonce', async () => {
    const { samples, deps: d } = await deps();
    const payload = signed('telemetry');
    const nonce = (JSON.parse(payload.toString()) as { signed: { nonce: string } }).signed.nonce;
    const answer = await handleCommand('telemetry', payload, d);
    expect(answer).toEqual({ ok: true, nonce, requestId: nonce });
    expect(samples).toHaveLength(1);
    expect(samples[0]).toMatchObject({ deviceId: 'cam-1' });
  });

  it('refuses an unsigned payload with COMMAND_UNSIGNED and an unknown command with SYNC_COMMAND_INVALID', async () => {
    const { deps: d } = await deps();
    for (const p of ['[1,2]', '{}', '{"requestId":"r-1"}', ''])
      expect(await handleCommand('sync', Buffer.from(p), d)).toMatchObject({
        ok: false,
        error: { code: 'COMMAND_UNSIGNED' },
      });
    expect(await handleCommand('sync', Buffer.from('{nope'), d)).toMatchObject({
      ok: false,
      error: { code: 'COMMAND_MALFORMED' },
    });
    const unknown = await handleCommand('reboot', Buffer.alloc(0), d);
    expect(unknown).toMatchObject({ ok: false, error: { code: 'SYNC_COMMAND_INVALID' } });
    expect(JSON.stringify(unknown)).toContain('telemetry');
  });

  it('refuses a signed rollback without a valid model id before touching anything', async () => {
    const { deps: d } = await deps();
    expect(await handleCommand('rollback', signed('rollback', { model: '../etc' }), d)).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST' },
    });
  });
});
