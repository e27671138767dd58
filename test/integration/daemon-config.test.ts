import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentEnv, runAgentVerb, writeStandaloneConfig } from '../helpers/daemon-process.js';

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
