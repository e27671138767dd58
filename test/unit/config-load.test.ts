import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config/load.js';
import { ENV_MAPPING } from '../../agent/config/env.js';
import { checkConfig } from '../../agent/cli/commands/check-config.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { capturedContext, type CapturedContext } from '../helpers/cli-context.js';

const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
const doc = {
  deviceId: 'xavier-3',
  cloud: { http: 'http://127.0.0.1:8080', mqtt: 'mqtt://127.0.0.1:1883' },
  credentials: { username: 'xavier-3', token: 'device-secret-token' },
  trustedKeys: [{ keyid: 'root', publicKey: pem }],
};

let dir: string;
let good: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-config-'));
  good = join(dir, 'agent.json');
  await writeFile(good, JSON.stringify(doc));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<OutpostError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OutpostError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

const ctx = (env: NodeJS.ProcessEnv = {}): CapturedContext => capturedContext(dir, env);

describe('loadAgentConfig', () => {
  it('reads the file and freezes the result', async () => {
    const { config, path, overridden } = await loadAgentConfig({ path: good, env: {} });
    expect(path).toBe(good);
    expect(config.deviceId).toBe('xavier-3');
    expect(overridden).toEqual({});
    expect(Object.isFrozen(config.download)).toBe(true);
  });

  it('takes OUTPOST_CONFIG when no path is given', async () => {
    const { path } = await loadAgentConfig({ env: { OUTPOST_CONFIG: good } });
    expect(path).toBe(good);
  });

  it('applies OUTPOST_* overrides with their types and says where they came from', async () => {
    const { config, overridden } = await loadAgentConfig({
      path: good,
      env: {
        OUTPOST_MODELS_DIR: '/data/models',
        OUTPOST_LOG_LEVEL: 'debug',
        OUTPOST_DOWNLOAD_PARALLEL: '8',
        OUTPOST_TELEMETRY_ENABLED: 'false',
        OUTPOST_SOCKET_MODE: '0600',
        OUTPOST_TAGS: 'lab, dock-2',
        OUTPOST_MQTT_URL: 'mqtts://broker:8883',
        OUTPOST_CLOUD_URL: 'https://cloud',
        OUTPOST_SOCKET: '',
      },
    });
    expect(config.modelsDir).toBe('/data/models');
    expect(config.log.level).toBe('debug');
    expect(config.download.parallel).toBe(8);
    expect(config.telemetry.enabled).toBe(false);
    expect(config.socketMode).toBe(0o600);
    expect(config.tags).toEqual(['lab', 'dock-2']);
    expect(config.cloud).toEqual({ http: 'https://cloud', mqtt: 'mqtts://broker:8883' });
    // An empty variable is unset (systemd's Environment=X= clears a value).
    expect(config.socket).toBe('/run/outpost/agent.sock');
    expect(overridden['download.parallel']).toBe('OUTPOST_DOWNLOAD_PARALLEL');
  });

  it('blames the variable, not the file, for a bad override', async () => {
    const e = await rejection(loadAgentConfig({ path: good, env: { OUTPOST_DOWNLOAD_PARALLEL: 'many' } }));
    expect(e.message).toBe(
      'download.parallel must be an integer 1..16, got "many" (in environment variable OUTPOST_DOWNLOAD_PARALLEL)',
    );
  });

  it('applies command-line overrides last', async () => {
    const { config, overridden } = await loadAgentConfig({
      path: good,
      env: { OUTPOST_LOG_LEVEL: 'warn' },
      overrides: { 'log.level': 'trace' },
    });
    expect(config.log.level).toBe('trace');
    expect(overridden['log.level']).toBe('command line');
  });

  it('maps every key except trustedKeys to one distinct variable', () => {
    const names = ENV_MAPPING.map((m) => m.env);
    expect(new Set(names).size).toBe(names.length);
    expect(ENV_MAPPING.find((m) => m.key === 'credentials.token')?.env).toBe('OUTPOST_DEVICE_TOKEN');
    expect(ENV_MAPPING.find((m) => m.key === 'api.maxConcurrentPerModel')?.env).toBe(
      'OUTPOST_API_MAX_CONCURRENT_PER_MODEL',
    );
    expect(ENV_MAPPING.some((m) => m.key.startsWith('trustedKeys'))).toBe(false);
  });

  it('reports a missing file, bad JSON and an unreadable file with their codes', async () => {
    expect((await rejection(loadAgentConfig({ path: join(dir, 'nope.json'), env: {} }))).code).toBe('CONFIG_NOT_FOUND');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"deviceId": "x",}');
    const e = await rejection(loadAgentConfig({ path: bad, env: {} }));
    expect(e.code).toBe('CONFIG_NOT_JSON');
    expect(e.message).toContain(bad);
    const dirAsFile = await rejection(loadAgentConfig({ path: dir, env: {} }));
    expect(dirAsFile.code).toBe('IO_ERROR');
  });
});

describe('outpost agent check-config', () => {
  it('prints the effective config with the token redacted', async () => {
    const c = ctx({ OUTPOST_LOG_LEVEL: 'warn' });
    expect(await checkConfig(['--config', good], c)).toBe(0);
    expect(c.out()).toContain(`${good}: valid`);
    expect(c.out()).toContain('log.level <- OUTPOST_LOG_LEVEL');
    expect(c.out()).toContain('"socketMode": "0660"');
    expect(c.out()).not.toContain('device-secret-token');
  });

  it('prints JSON with --json', async () => {
    const c = ctx();
    expect(await checkConfig(['--config', good, '--json'], c)).toBe(0);
    const r = JSON.parse(c.out());
    expect(r.ok).toBe(true);
    expect(r.config.credentials.token).toBe('[redacted]');
    expect(r.config.socketMode).toBe(0o660);
  });

  it('prints one line per problem and exits 3', async () => {
    const f = join(dir, 'typo.json');
    await writeFile(f, JSON.stringify({ ...doc, keepVersion: 2, download: { parallel: 99 } }));
    const c = ctx();
    expect(await checkConfig(['--config', f], c)).toBe(3);
    const lines = c.err().trim().split('\n');
    expect(lines).toEqual([
      `error CONFIG_UNKNOWN_KEY: keepVersion is not a known key (did you mean "keepVersions"?) (in ${f})`,
      `error CONFIG_INVALID: download.parallel must be an integer 1..16, got 99 (in ${f})`,
    ]);
    const j = ctx();
    expect(await checkConfig(['--config', f, '--json'], j)).toBe(3);
    expect(JSON.parse(j.out()).error.details.issues).toHaveLength(2);
  });

  it('exits 4 for a missing file and 2 for a bad flag', async () => {
    expect(await checkConfig(['--config', join(dir, 'none.json')], ctx())).toBe(4);
    expect(await checkConfig(['--bogus'], ctx())).toBe(2);
  });
});

describe('docs/configuration.md', () => {
  it('documents every key and its variable', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const m of ENV_MAPPING) expect(doc, `${m.key} / ${m.env}`).toContain(`| \`${m.key}\` | \`${m.env}\``);
    expect(doc).toContain('| `trustedKeys` | (file only)');
  });
});
