import { describe, expect, it } from 'vitest';
import { canPublish, canSubscribe } from '../../cloud-broker/broker/acl.js';
import { DYNSEC_TOPIC, DynsecAdmin, parseDynsecResponses } from '../../cloud-broker/broker/dynsec.js';
import { deviceAcls } from '../../cloud-broker/broker/dynsec-directory.js';
import { brokerFlags } from '../../cloud-broker/cli/broker-flags.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';

/**
 * DynsecAdmin's request/response bookkeeping, driven by hand: the channel records what would be
 * published, and answers are fed as the plugin shapes them. The real plugin is exercised in
 * test/integration/broker-dynsec.test.ts.
 */
function harness(o: { maxInFlight?: number; timeoutMs?: number; failPublish?: boolean } = {}) {
  const sent: { topic: string; body: { commands: Record<string, unknown>[] } }[] = [];
  const admin = new DynsecAdmin({
    channel: {
      publish: async (topic, payload) => {
        if (o.failPublish) throw new Error('offline');
        sent.push({ topic, body: JSON.parse(payload) as { commands: Record<string, unknown>[] } });
      },
    },
    log: silentLogger,
    username: 'admin',
    maxInFlight: o.maxInFlight,
    timeoutMs: o.timeoutMs ?? 5000,
  });
  const answer = (i: number, extra: Record<string, unknown> = {}): void => {
    const cmd = sent[i]!.body.commands[0]!;
    admin.handleResponse(
      Buffer.from(
        JSON.stringify({ responses: [{ command: cmd.command, correlationData: cmd.correlationData, ...extra }] }),
      ),
    );
  };
  return { admin, sent, answer };
}

const codeOf = (e: unknown): string | undefined => (e instanceof OutpostError ? e.code : undefined);

describe('DynsecAdmin', () => {
  it('correlates answers by correlationData, in any order, and ignores answers that are not its own', async () => {
    const { admin, sent, answer } = harness();
    const a = admin.run({ command: 'getClient', username: 'a' });
    const b = admin.run({ command: 'getClient', username: 'b' });
    await Promise.resolve();
    expect(sent.map((s) => s.topic)).toEqual([DYNSEC_TOPIC, DYNSEC_TOPIC]);
    const ids = sent.map((s) => s.body.commands[0]!.correlationData);
    expect(new Set(ids).size).toBe(2);
    // Another replica's answer on the shared response topic, and junk: both ignored.
    admin.handleResponse(
      Buffer.from(JSON.stringify({ responses: [{ command: 'getClient', correlationData: 'x-1' }] })),
    );
    admin.handleResponse(Buffer.from('not json'));
    expect(admin.inFlight).toBe(2);
    answer(1, { data: { client: { username: 'b' } } });
    answer(0, { data: { client: { username: 'a' } } });
    expect((await a).data).toEqual({ client: { username: 'a' } });
    expect((await b).data).toEqual({ client: { username: 'b' } });
    expect(admin.inFlight).toBe(0);
  });

  it('a refusal is DYNSEC_REFUSED unless the caller accepts it (idempotent create)', async () => {
    const { admin, answer } = harness();
    const created = admin.run({ command: 'createClient', username: 'd', password: 'secret' }, [
      'Client already exists',
    ]);
    await Promise.resolve();
    answer(0, { error: 'Client already exists' });
    expect((await created).error).toBe('Client already exists');
    const refused = admin.run({ command: 'addClientRole', username: 'd', rolename: 'r' }).catch((e: unknown) => e);
    await Promise.resolve();
    answer(1, { error: 'Role not found' });
    const err = await refused;
    expect(codeOf(err)).toBe('DYNSEC_REFUSED');
    expect((err as OutpostError).message).toContain('Role not found');
  });

  it('bounds what waits: DYNSEC_BUSY past maxInFlight, DYNSEC_TIMEOUT, DYNSEC_DISCONNECTED', async () => {
    const { admin } = harness({ maxInFlight: 2, timeoutMs: 50 });
    const waiting = [admin.run({ command: 'listClients' }), admin.run({ command: 'listClients' })].map((p) =>
      p.catch((e: unknown) => e),
    );
    expect(codeOf(await admin.run({ command: 'listClients' }).catch((e: unknown) => e))).toBe('DYNSEC_BUSY');
    expect((await Promise.all(waiting)).map(codeOf)).toEqual(['DYNSEC_TIMEOUT', 'DYNSEC_TIMEOUT']);
    expect(admin.inFlight).toBe(0);

    const lost = admin.run({ command: 'deleteClient', username: 'd' }).catch((e: unknown) => e);
    admin.connectionLost();
    expect(codeOf(await lost)).toBe('DYNSEC_DISCONNECTED');
    const offline = harness({ failPublish: true });
    expect(codeOf(await offline.admin.run({ command: 'listClients' }).catch((e: unknown) => e))).toBe(
      'DYNSEC_DISCONNECTED',
    );
    expect(offline.admin.inFlight).toBe(0);
  });

  it('parseDynsecResponses keeps only well-formed answers', () => {
    expect(parseDynsecResponses(null)).toBeNull();
    expect(parseDynsecResponses({ responses: 'x' })).toBeNull();
    expect(parseDynsecResponses({ responses: [1, { command: 2 }, { command: 'c', error: 'e', data: [] }] })).toEqual([
      { command: 'c', error: 'e' },
    ]);
  });
});

describe("a device's dynsec role is acl.ts's policy", () => {
  it('allows exactly the topics acl.ts allows the device, for its own id', () => {
    const acls = deviceAcls('cam-1');
    const pub = acls.filter((a) => a.acltype === 'publishClientSend').map((a) => a.topic);
    for (const t of pub) expect(canPublish({ kind: 'device', deviceId: 'cam-1' }, t.replace('/#', '/sync'))).toBe(true);
    const sub = acls.filter((a) => a.acltype.startsWith('subscribe')).map((a) => a.topic);
    for (const t of sub) expect(canSubscribe({ kind: 'device', deviceId: 'cam-1' }, t)).toBe(true);
    expect(pub).not.toContain(topics.desired('cam-1'));
    expect(acls.every((a) => a.allow && a.topic.startsWith(topics.device('cam-1') + '/'))).toBe(true);
  });
});

describe('--broker flags', () => {
  it('takes the credentials out of the URL, never echoes the password, and refuses embedded-broker flags', async () => {
    const b = await brokerFlags({ broker: 'mqtt://adm%40x:s%3Acret@broker.lan:1884' }, {}, '/');
    expect(b).toEqual({ url: 'mqtt://broker.lan:1884', username: 'adm@x', password: 's:cret', admin: 'dynsec' });
    const env = await brokerFlags(
      { broker: 'mqtts://adm@broker.lan', 'broker-admin': 'none' },
      { OUTPOST_BROKER_PASSWORD: 'p' },
      '/',
    );
    expect(env).toEqual({ url: 'mqtts://broker.lan', username: 'adm', password: 'p' });
    for (const values of [
      { broker: 'http://adm:hunter2@broker.lan' },
      { broker: 'mqtt://adm:hunter2@broker.lan', redis: 'redis://x' },
      { broker: 'mqtt://adm:hunter2@broker.lan', 'broker-admin': 'emqx' },
      { broker: 'mqtt://broker.lan' },
      { 'broker-admin': 'dynsec' },
    ]) {
      const err = await brokerFlags(values, {}, '/').catch((e: unknown) => e);
      expect(codeOf(err)).toBe('CLOUD_BROKER_FLAGS');
      expect(JSON.stringify({ m: (err as Error).message, d: (err as OutpostError).details })).not.toContain('hunter2');
    }
  });
});
