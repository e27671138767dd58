import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certCoversHost, checkTlsMaterial, readTlsFiles } from '../../cloud-broker/tls.js';
import { parseAgentConfig } from '../../protocol/agent-config.js';
import { cleanEnv, runInProcess, SHIM } from '../helpers/cli.js';
import { codeOf } from '../helpers/error-code.js';
import { skipForPackage } from '../helpers/requires.js';
import { makeTestPki, missingOpenssl, type TestPki } from './tls-certs.js';

/**
 * `outpost cloud start` TLS and WebSocket flags through the real CLI: flag combinations and bad
 * files are refused with their codes before anything is created, and a real process started with
 * them advertises and provisions the mqtts:// URL with the CA. Plus `cloud.ca` in agent.json.
 */
describe.skipIf(skipForPackage(missingOpenssl()))('outpost cloud start with TLS and WebSocket', () => {
  let dir: string;
  let pki: TestPki;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-tlscli-'));
    pki = await makeTestPki(dir);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );

  it.each([
    [
      'cert without key',
      2,
      'CLOUD_TLS_FLAGS',
      /--tls-cert needs --tls-key/,
      (p: TestPki) => ['--tls-cert', p.serverCert],
    ],
    [
      'key without cert',
      2,
      'CLOUD_TLS_FLAGS',
      /--tls-key needs --tls-cert/,
      (p: TestPki) => ['--tls-key', p.serverKey],
    ],
    [
      'TLS port without cert',
      2,
      'CLOUD_TLS_FLAGS',
      /--mqtt-tls-port needs --tls-cert and --tls-key/,
      () => ['--mqtt-tls-port', '8883'],
    ],
    ['CA without cert', 2, 'CLOUD_TLS_FLAGS', /--tls-ca needs/, (p: TestPki) => ['--tls-ca', p.caCert]],
    [
      'TLS port out of range',
      2,
      'USAGE',
      /--mqtt-tls-port \\?"65536\\?" is not a port/,
      (p: TestPki) => ['--tls-cert', p.serverCert, '--tls-key', p.serverKey, '--mqtt-tls-port', '65536'],
    ],
    [
      'WebSocket port not a number',
      2,
      'USAGE',
      /--mqtt-ws-port \\?"ws\\?" is not a port/,
      () => ['--mqtt-ws-port', 'ws'],
    ],
    [
      'two listeners on one port',
      2,
      'USAGE',
      /--mqtt-ws-port and --http-port are both 18080/,
      () => ['--http-port', '18080', '--mqtt-ws-port', '18080'],
    ],
    [
      'missing certificate file',
      3,
      'CLOUD_TLS_INVALID',
      /nope\.crt: cannot be read \(ENOENT\)/,
      (p: TestPki) => ['--tls-cert', join(p.dir, 'nope.crt'), '--tls-key', p.serverKey],
    ],
    [
      'key given as certificate',
      3,
      'CLOUD_TLS_INVALID',
      /has no PEM certificate/,
      (p: TestPki) => ['--tls-cert', p.serverKey, '--tls-key', p.serverKey],
    ],
    [
      'certificate given as key',
      3,
      'CLOUD_TLS_INVALID',
      /--tls-key .*not a readable unencrypted PEM private key/,
      (p: TestPki) => ['--tls-cert', p.serverCert, '--tls-key', p.serverCert],
    ],
    [
      'key of another certificate',
      3,
      'CLOUD_TLS_INVALID',
      /is not the private key of the certificate/,
      (p: TestPki) => ['--tls-cert', p.serverCert, '--tls-key', p.selfKey],
    ],
    [
      'CA that did not issue the certificate',
      3,
      'CLOUD_TLS_INVALID',
      /did not issue the certificate/,
      (p: TestPki) => ['--tls-cert', p.serverCert, '--tls-key', p.serverKey, '--tls-ca', p.otherCaCert],
    ],
  ] as const)('%s: exit %i with %s, nothing created', async (_name, exit, code, message, args) => {
    const dataDir = join(dir, `data-${code}-${Math.random().toString(36).slice(2)}`);
    const run = await runInProcess(
      ['cloud', 'start', '--data-dir', dataDir, '--http-port', '0', ...args(pki), '--json'],
      { cwd: dir, env: cleanEnv({ HOME: dir }) },
    );
    expect(run.code).toBe(exit);
    expect(run.errorCode()).toBe(code);
    expect(run.stdout + run.stderr).toMatch(message);
    expect(await exists(dataDir)).toBe(false);
  });

  it('a real cloud with a self-signed certificate and WebSocket: --json, cloud.json and provisioned agent.json carry mqtts, ws and the CA', async () => {
    const dataDir = join(dir, 'data-ok');
    const child = spawn(
      process.execPath,
      [
        SHIM,
        'cloud',
        'start',
        '--data-dir',
        dataDir,
        '--http-port',
        '0',
        '--tls-cert',
        pki.selfCert,
        '--tls-key',
        pki.selfKey,
        '--mqtt-ws-port',
        '0',
        '--json',
      ],
      { cwd: dir, env: cleanEnv({ HOME: dir }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exit = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    child.stderr.resume();
    try {
      const first = await new Promise<string>((resolve, reject) => {
        readline.createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (c) => reject(new Error(`cloud start exited with ${c} before printing`)));
      });
      const info = JSON.parse(first) as Record<string, string | null>;
      expect(Object.keys(info).sort()).toEqual(['adminTokenFile', 'http', 'mqtt', 'mqtts', 'ws']);
      expect(info.mqtt).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
      expect(info.mqtts).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
      expect(info.ws).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
      const cloudJson = JSON.parse(await readFile(join(dataDir, 'cloud.json'), 'utf8')) as Record<string, unknown>;
      expect(cloudJson).toMatchObject({ http: info.http, mqtt: info.mqtt, mqtts: info.mqtts, ws: info.ws });

      const token = (await readFile(info.adminTokenFile!, 'utf8')).trim();
      const env = cleanEnv({ HOME: dir, OUTPOST_CLOUD_URL: info.http!, OUTPOST_TOKEN: token });
      const out = join(dir, 'device-1');
      const run = await runInProcess(['device', 'provision', 'cam-1', '--out', out, '--json'], { cwd: dir, env });
      expect(run.code, run.stderr).toBe(0);
      const file = join(out, 'agent.json');
      const config = parseAgentConfig(JSON.parse(await readFile(file, 'utf8')), file);
      expect(config.cloud.mqtt).toBe(info.mqtts);
      // No --tls-ca: a self-signed certificate is its own CA.
      expect(config.cloud.ca).toBe(await readFile(pki.selfCert, 'utf8'));
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
  });
});

describe.skipIf(skipForPackage(missingOpenssl()))('TLS material checks (cloud-broker/tls.ts)', () => {
  let dir: string;
  let pki: TestPki;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-tlschk-'));
    pki = await makeTestPki(dir);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('finds the CA through the intermediates in the cert file, and refuses a leaf sent without them', async () => {
    const ok = checkTlsMaterial(await readTlsFiles({ cert: pki.chainedCert, key: pki.chainedKey, ca: pki.caCert }));
    expect(ok.deviceCa).toBe(await readFile(pki.caCert, 'utf8'));
    const leafOnly = await readTlsFiles({ cert: pki.chainedLeafOnly, key: pki.chainedKey, ca: pki.caCert });
    expect(codeOf(() => checkTlsMaterial(leafOnly))).toBe('CLOUD_TLS_INVALID');
  });

  it('gives devices no CA for a certificate that is neither self-signed nor given a --tls-ca (a public CA)', async () => {
    const noCa = checkTlsMaterial(await readTlsFiles({ cert: pki.serverCert, key: pki.serverKey }));
    expect(noCa.deviceCa).toBeNull();
    // Issued by the test CA, which no public root list holds: the cloud warns about it.
    expect(noCa.publiclyTrusted).toBe(false);
    expect(checkTlsMaterial(await readTlsFiles({ cert: pki.selfCert, key: pki.selfKey })).deviceCa).toBe(
      await readFile(pki.selfCert, 'utf8'),
    );
  });

  it('knows which hosts the certificate names (the cloud warns when the advertised one is not among them)', async () => {
    const { leaf } = checkTlsMaterial(await readTlsFiles({ cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert }));
    expect(
      ['127.0.0.1', 'localhost', '[127.0.0.1]', '10.0.0.1', 'outpost.example.com'].map((h) => certCoversHost(leaf, h)),
    ).toEqual([true, true, true, false, false]);
  });
});

describe.skipIf(skipForPackage(missingOpenssl()))('agent.json cloud.ca', () => {
  let dir: string;
  let pki: TestPki;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-tlsca-'));
    pki = await makeTestPki(dir);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const base = (ca: unknown) => ({
    deviceId: 'cam-1',
    cloud: { http: 'http://127.0.0.1:8080', mqtt: 'mqtts://127.0.0.1:8883', ca },
    credentials: { username: 'cam-1', token: 'x'.repeat(32) },
    trustedKeys: [
      {
        keyid: 'k',
        publicKey: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      },
    ],
  });

  it('accepts one or several PEM certificates', async () => {
    const ca = await readFile(pki.caCert, 'utf8');
    expect(parseAgentConfig(base(ca), 'test').cloud.ca).toBe(ca);
    const two = ca + (await readFile(pki.otherCaCert, 'utf8'));
    expect(parseAgentConfig(base(two), 'test').cloud.ca).toBe(two);
    expect(parseAgentConfig(base(undefined), 'test').cloud.ca).toBeUndefined();
  });

  it.each([
    ['a private key', (p: TestPki) => readFile(p.serverKey, 'utf8'), /must be one or more PEM certificates/],
    ['a number', async () => 42, /must be one or more PEM certificates/],
    [
      'a damaged certificate',
      async (p: TestPki) => (await readFile(p.caCert, 'utf8')).replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAA'),
      /certificate 1 of 1 is not a readable X.509 certificate/,
    ],
  ])('refuses %s with CONFIG_INVALID naming cloud.ca', async (_name, value, message) => {
    const doc = base(await value(pki));
    expect(codeOf(() => parseAgentConfig(doc, '/etc/outpost/agent.json'))).toBe('CONFIG_INVALID');
    expect(() => parseAgentConfig(doc, '/etc/outpost/agent.json')).toThrow(/^cloud\.ca /);
    expect(() => parseAgentConfig(doc, '/etc/outpost/agent.json')).toThrow(message);
  });
});
