import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AGENT_CONFIG_DEFAULTS,
  knownConfigKeys,
  parseAgentConfig,
  redactAgentConfig,
  type AgentConfig,
} from '../../protocol/agent-config.js';
import { checkAgentConfigRoot } from '../../protocol/agent-config-root.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { diffReloadable, applyReloadable } from '../../agent/config/reload.js';

const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 1024 })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();
const SRC = '/etc/outpost/agent.json';

function minimal(): Record<string, unknown> {
  return {
    deviceId: 'jetson-07',
    cloud: { http: 'https://cloud.example:8443', mqtt: 'mqtts://cloud.example:8883' },
    credentials: { username: 'jetson-07', token: 'tok-0123456789' },
    trustedKeys: [{ keyid: 'root-1', publicKey: pem }],
  };
}

function failure(value: unknown): OutpostError {
  try {
    parseAgentConfig(value, SRC);
  } catch (err) {
    if (err instanceof OutpostError) return err;
    throw err;
  }
  throw new Error('parseAgentConfig accepted an invalid config');
}

describe('parseAgentConfig', () => {
  it('fills every default into a minimal config', () => {
    const c = parseAgentConfig(minimal(), SRC);
    expect(c.modelsDir).toBe('/var/lib/outpost/models');
    expect(c.socket).toBe('/run/outpost/agent.sock');
    expect(c.socketMode).toBe(0o660);
    expect(c.keepVersions).toBe(3);
    expect(c.download).toEqual(AGENT_CONFIG_DEFAULTS.download);
    expect(c.telemetry).toEqual({ intervalSeconds: 60, enabled: true });
    expect(c.tags).toEqual([]);
    // Defaults are copied, not shared: mutating one parsed config cannot leak into the next.
    c.tags.push('x');
    expect(parseAgentConfig(minimal(), SRC).tags).toEqual([]);
  });

  it('keeps given values and reads octal socket modes from strings', () => {
    const c = parseAgentConfig(
      { ...minimal(), socketMode: '0640', download: { parallel: 16 }, tags: ['lab', 'floor-2'] },
      SRC,
    );
    expect(c.socketMode).toBe(0o640);
    expect(c.download.parallel).toBe(16);
    expect(c.download.retries).toBe(5);
    expect(c.tags).toEqual(['lab', 'floor-2']);
  });

  it('names the key, the value and the file in the message', () => {
    const e = failure({ ...minimal(), download: { parallel: 0 } });
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toBe(`download.parallel must be an integer 1..16, got 0 (in ${SRC})`);
    expect(e.exitCode).toBe(3);
  });

  it('refuses unknown keys at any depth, with a suggestion', () => {
    const e = failure({ ...minimal(), modelDir: '/x', telemetry: { intervalSecond: 30 } });
    expect(e.code).toBe('CONFIG_UNKNOWN_KEY');
    expect(e.message).toContain('modelDir is not a known key (did you mean "modelsDir"?)');
    expect(e.message).toContain(
      'telemetry.intervalSecond is not a known key (did you mean "telemetry.intervalSeconds"?)',
    );
    const keys = (e.details!.issues as { key: string }[]).map((i) => i.key);
    expect(keys).toEqual(['modelDir', 'telemetry.intervalSecond']);
  });

  it('collects every problem, required keys included', () => {
    const e = failure({ deviceId: 'a/b', socket: 'relative.sock' });
    const keys = (e.details!.issues as { key: string }[]).map((i) => i.key).sort();
    expect(keys).toEqual(['cloud', 'credentials', 'deviceId', 'socket', 'trustedKeys']);
  });

  it.each([
    [{ cloud: { http: 'ftp://x', mqtt: 'mqtt://x' } }, 'cloud.http must be a http/https URL'],
    [{ cloud: { http: 'http://x', mqtt: 'http://x' } }, 'cloud.mqtt must be a mqtt/mqtts/ws/wss/tcp/tls URL'],
    [{ trustedKeys: [] }, 'trustedKeys must be a list of 1..32 entries'],
    [{ trustedKeys: [{ keyid: 'k', publicKey: 'abc' }] }, 'trustedKeys[0].publicKey must be a PEM public key'],
    [{ trustedKeys: [{ keyid: 'k', publicKey: pem, kind: 'x' }] }, 'trustedKeys[0].kind is not a known key'],
    [{ socketMode: '0999' }, 'socketMode must be a file mode like "0660", got "0999"'],
    [
      { log: { level: 'verbose' } },
      'log.level must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ],
    [{ telemetry: { enabled: 'yes' } }, 'telemetry.enabled must be true or false, got "yes"'],
    [
      { mqtt: { reconnectMinMs: 5000, reconnectMaxMs: 1000 } },
      'mqtt.reconnectMaxMs must be >= mqtt.reconnectMinMs (5000), got 1000',
    ],
    [{ download: 4 }, 'download must be an object, got 4'],
    [{ tags: ['ok', 'no spaces'] }, 'tags[1] must be a tag'],
  ])('rejects %j', (patch, message) => {
    expect(failure({ ...minimal(), ...patch }).message).toContain(message);
  });

  it('never echoes a token, even a wrong one', () => {
    const e = failure({ ...minimal(), credentials: { username: 'u', token: 'has space secretvalue' } });
    expect(e.message).toContain('credentials.token must be');
    expect(e.message).not.toContain('secretvalue');
    expect(JSON.stringify(e.details)).not.toContain('secretvalue');
  });

  it('rejects a document that is not an object', () => {
    expect(failure([1]).code).toBe('CONFIG_INVALID');
    expect(failure(null).message).toContain(SRC);
  });

  it('redacts the token only', () => {
    const c = parseAgentConfig(minimal(), SRC);
    const r = redactAgentConfig(c);
    expect(r.credentials.token).toBe('[redacted]');
    expect(c.credentials.token).toBe('tok-0123456789');
    expect(r.deviceId).toBe(c.deviceId);
  });

  it('reads the onnx session settings, and refuses bad ones by key', () => {
    expect(parseAgentConfig(minimal(), SRC).onnx).toEqual({
      workers: 1,
      intraOpThreads: 0,
      interOpThreads: 1,
      executionMode: 'sequential',
      maxQueuedPerModel: 64,
      workerMinMicros: 500,
      workerRestarts: 5,
      workerRestartWindowMs: 60_000,
    });
    const c = parseAgentConfig(
      { ...minimal(), onnx: { workers: 0, intraOpThreads: 4, executionMode: 'parallel', maxQueuedPerModel: 0 } },
      SRC,
    );
    expect(c.onnx).toMatchObject({ workers: 0, intraOpThreads: 4, executionMode: 'parallel', maxQueuedPerModel: 0 });
    expect(failure({ ...minimal(), onnx: { workers: 17 } }).message).toBe(
      `onnx.workers must be an integer 0..16, got 17 (in ${SRC})`,
    );
    expect(failure({ ...minimal(), onnx: { executionMode: 'fast' } }).message).toContain(
      'onnx.executionMode must be one of sequential, parallel, got "fast"',
    );
    expect(failure({ ...minimal(), onnx: { interOpThreads: 0 } }).code).toBe('CONFIG_INVALID');
    expect(failure({ ...minimal(), onnx: { threads: 2 } }).code).toBe('CONFIG_UNKNOWN_KEY');
  });

  it('leaves reading trustedKeys to checkAgentConfigRoot, which refuses an RSA key naming it', () => {
    // The shape passes parseAgentConfig; the key type needs node:crypto (agent-config-root.ts).
    const parsed = parseAgentConfig({ ...minimal(), trustedKeys: [{ keyid: 'k', publicKey: rsaPem }] }, SRC);
    let err: OutpostError | undefined;
    try {
      checkAgentConfigRoot(parsed, SRC);
    } catch (e) {
      err = e as OutpostError;
    }
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.message).toBe(`trustedKeys[0].publicKey must be an Ed25519 public key, got rsa (in ${SRC})`);
    expect(checkAgentConfigRoot(parseAgentConfig(minimal(), SRC), SRC)).toBeNull();
  });

  it('lists its known keys', () => {
    expect(knownConfigKeys()).toContain('download.parallel');
    expect(knownConfigKeys()).toContain('credentials.token');
    expect(knownConfigKeys()).not.toContain('download');
  });
});

describe('diffReloadable', () => {
  const base = (): AgentConfig => parseAgentConfig(minimal(), SRC);

  it('sorts changed keys into live and restart', () => {
    const a = base();
    const b = parseAgentConfig(
      {
        ...minimal(),
        log: { level: 'debug' },
        telemetry: { intervalSeconds: 10 },
        socket: '/run/x.sock',
        trustedKeys: [{ keyid: 'root-2', publicKey: pem }],
      },
      SRC,
    );
    const d = diffReloadable(a, b);
    expect(d.reloadable.sort()).toEqual(['log.level', 'telemetry.intervalSeconds']);
    expect(d.restartRequired.sort()).toEqual(['socket', 'trustedKeys']);
    const applied = applyReloadable(a, b);
    expect(applied.log.level).toBe('debug');
    expect(applied.telemetry.intervalSeconds).toBe(10);
    expect(applied.socket).toBe(a.socket);
    expect(applied.trustedKeys).toEqual(a.trustedKeys);
  });

  it('finds nothing between equal configs', () => {
    expect(diffReloadable(base(), base())).toEqual({ reloadable: [], restartRequired: [] });
  });
});
