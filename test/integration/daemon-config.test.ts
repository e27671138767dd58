import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { agentEnv, notifyReceiver, runAgentVerb, writeStandaloneConfig } from '../helpers/daemon-process.js';
import { buildRoot, tufKey } from '../../protocol/trust-root.js';

/**
 * Bad config files against the real binary: `agent run` exits 3 (the unit's
 * RestartPreventExitStatus, so systemd does not loop on a file a restart cannot fix), names the
 * key, and never starts serving; `agent check-config` reports the same problem.
 */
let dir: string;
let good: Record<string, unknown>;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-daemon-config-'));
  good = (await writeStandaloneConfig(dir)).config;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Case {
  name: string;
  /** File text; null for no file at all. */
  text: () => string | null;
  env?: Record<string, string>;
  code: string;
  /** What the message must name. */
  names: RegExp;
  checkConfigExit?: number;
}

const without = (key: string): Record<string, unknown> => {
  const c = { ...good };
  delete c[key];
  return c;
};

/** A root as `outpost device provision` writes it; `edit` changes its signed part. */
const root = (edit: (signed: Record<string, any>) => void = () => undefined): Record<string, unknown> => {
  const key = () => tufKey(generateKeyPairSync('ed25519').publicKey);
  const doc = JSON.parse(
    JSON.stringify(
      buildRoot({ version: 1, expires: '2030-01-01T00:00:00Z', rootKeys: [key()], threshold: 1, onlineKeys: [key()] }),
    ),
  );
  edit(doc.signed);
  return doc;
};

const CASES: Case[] = [
  { name: 'missing file', text: () => null, code: 'CONFIG_NOT_FOUND', names: /does not exist/, checkConfigExit: 4 },
  { name: 'not JSON', text: () => '{"deviceId": "x",', code: 'CONFIG_NOT_JSON', names: /is not valid JSON/ },
  {
    name: 'unknown key (typo)',
    text: () => JSON.stringify({ ...good, telemetri: { enabled: false } }),
    code: 'CONFIG_UNKNOWN_KEY',
    names: /telemetri is not a known key \(did you mean "telemetry"\?\)/,
  },
  {
    name: 'bad value',
    text: () => JSON.stringify({ ...good, download: { parallel: 0 } }),
    code: 'CONFIG_INVALID',
    names: /download\.parallel must be an integer 1\.\.16, got 0/,
  },
  {
    // Caught by the shape check, before anything starts (protocol/trust-root-shape.ts).
    name: 'trustedRoot without a targets role',
    text: () => JSON.stringify({ ...good, trustedRoot: root((s) => delete s.roles.targets) }),
    code: 'CONFIG_INVALID',
    names: /trustedRoot must be TUF root metadata .*role targets/,
  },
  {
    name: 'missing credentials',
    text: () => JSON.stringify(without('credentials')),
    code: 'CONFIG_INVALID',
    names: /credentials is required/,
  },
  {
    name: 'short token, not echoed',
    text: () => JSON.stringify({ ...good, credentials: { username: 'u', token: 'abc' } }),
    code: 'CONFIG_INVALID',
    names: /credentials\.token must be a string of 8\.\.4096 characters/,
  },
  {
    name: 'bad environment override',
    text: () => JSON.stringify(good),
    env: { OUTPOST_API_MAX_CONCURRENT_PER_MODEL: 'lots' },
    code: 'CONFIG_INVALID',
    names:
      /api\.maxConcurrentPerModel must be an integer 1\.\.256, got "lots" \(in environment variable OUTPOST_API_MAX_CONCURRENT_PER_MODEL\)/,
  },
];

describe('bad agent configs', () => {
  it.each(CASES)('$name: agent run exits 3 naming the problem; check-config agrees', async (c) => {
    const sub = await mkdtemp(join(dir, 'case-'));
    const file = join(sub, 'agent.json');
    const text = c.text();
    if (text !== null) await writeFile(file, text);
    const env = agentEnv(c.env);
    const run = await runAgentVerb(['agent', 'run', '--config', file], env);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(new RegExp(`^error ${c.code}: `));
    expect(run.stderr).toMatch(c.names);
    // A secret is never echoed back, not even a wrong one.
    expect(run.stderr).not.toContain('"abc"');
    // Nothing started: no socket, no models folder.
    await expect(stat(good.socket as string)).rejects.toMatchObject({ code: 'ENOENT' });

    const check = await runAgentVerb(['agent', 'check-config', '--config', file, '--json'], env);
    expect(check.code).toBe(c.checkConfigExit ?? 3);
    const err = (JSON.parse(check.stdout.trim().split('\n').pop()!) as { error: { code: string; message: string } })
      .error;
    expect(err.code).toBe(c.code);
    expect(err.message).toMatch(c.names);
  });

  it('a trustedRoot whose keyid is not its key: run stops after READY with exit 3, check-config agrees', async () => {
    // Only the full TUF parse sees this, and the daemon runs it before it trusts anything.
    const bad = root((s) => {
      const [id] = s.roles.targets.keyids as string[];
      const other = 'f'.repeat(64);
      s.keys[other] = s.keys[id];
      delete s.keys[id];
      s.roles.targets.keyids = [other];
    });
    const sub = await mkdtemp(join(dir, 'root-'));
    const file = join(sub, 'agent.json');
    await writeFile(file, JSON.stringify({ ...good, socket: join(sub, 'agent.sock'), trustedRoot: bad }));
    const rx = notifyReceiver(sub);
    const run = await runAgentVerb(['agent', 'run', '--config', file], agentEnv({ NOTIFY_SOCKET: rx.path })).finally(
      () => rx.close(),
    );
    expect(rx.messages.some((m) => m.startsWith('READY=1'))).toBe(true);
    expect(rx.messages.some((m) => m.startsWith('STOPPING=1'))).toBe(true);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(
      /^error CONFIG_INVALID: trustedRoot must be TUF root metadata .*is not the sha256 of its public key/,
    );
    // It served until then and stopped cleanly: the socket is gone, no sync state was written.
    await expect(stat(join(sub, 'agent.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
    const check = await runAgentVerb(['agent', 'check-config', '--config', file, '--json'], agentEnv());
    expect(check.code).toBe(3);
    expect(check.stdout).toMatch(/CONFIG_INVALID/);
  });

  it('the good file passes check-config with the token redacted', async () => {
    const file = join(dir, 'agent.json');
    const check = await runAgentVerb(['agent', 'check-config', '--config', file, '--json'], agentEnv());
    expect(check.code).toBe(0);
    const out = JSON.parse(check.stdout) as { ok: boolean; config: { credentials: { token: string } } };
    expect(out.ok).toBe(true);
    expect(out.config.credentials.token).toBe('[redacted]');
    expect(check.stdout).not.toContain((good.credentials as { token: string }).token);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(good);
  });
});
