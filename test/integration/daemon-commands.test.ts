import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { handleCommand } from '../../agent/daemon/commands.js';
import { createTelemetry } from '../../agent/telemetry/index.js';
import type { Reconciler } from '../../agent/sync/reconciler.js';
import { silentLogger } from '../../protocol/log.js';

/**
 * The command table the daemon answers on responses/{cmd}: every command gets exactly one answer,
 * a bad payload or an unknown name a coded refusal. The reconciler's commands are covered end to
 * end in test/e2e/sync.test.ts and agent-security; here the table itself and `telemetry`.
 */
describe('device commands', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

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
    // Not reached by the commands under test: a call would throw and fail the test.
    const reconciler = {} as Reconciler;
    return { samples, deps: { reconciler, telemetry, log: silentLogger } };
  }

  it('telemetry takes and publishes a sample now, echoing the request id', async () => {
    const { samples, deps: d } = await deps();
    const answer = await handleCommand('telemetry', Buffer.from('{"requestId":"r-1"}'), d);
    expect(answer).toEqual({ ok: true, requestId: 'r-1' });
    expect(samples).toHaveLength(1);
    expect(samples[0]).toMatchObject({ deviceId: 'cam-1' });
  });

  it('refuses a payload that is not a JSON object, and an unknown command, with SYNC_COMMAND_INVALID', async () => {
    const { deps: d } = await deps();
    expect(await handleCommand('sync', Buffer.from('[1,2]'), d)).toMatchObject({
      ok: false,
      error: { code: 'SYNC_COMMAND_INVALID' },
    });
    expect(await handleCommand('sync', Buffer.from('{nope'), d)).toMatchObject({
      ok: false,
      error: { code: 'SYNC_COMMAND_INVALID' },
    });
    const unknown = await handleCommand('reboot', Buffer.alloc(0), d);
    expect(unknown).toMatchObject({ ok: false, error: { code: 'SYNC_COMMAND_INVALID' } });
    expect(JSON.stringify(unknown)).toContain('telemetry');
  });

  it('refuses a rollback without a valid model id before touching anything', async () => {
    const { deps: d } = await deps();
    expect(await handleCommand('rollback', Buffer.from('{"model":"../etc"}'), d)).toMatchObject({
      ok: false,
      error: { code: 'BAD_REQUEST' },
    });
  });
});
