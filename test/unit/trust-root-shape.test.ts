import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../protocol/agent-config.js';
import { checkAgentConfigRoot } from '../../protocol/agent-config-root.js';
import { rootShapeProblem } from '../../protocol/trust-root-shape.js';
import { buildRoot, parseRoot, tufKey } from '../../protocol/trust-root.js';
import { codeOf } from '../helpers/error-code.js';

/**
 * The agent checks a config's trustedRoot for its shape before READY (protocol/trust-root-shape.ts)
 * and gives it the full TUF parse afterwards (agent-config-root.ts): every document the shape
 * check refuses, the full parse refuses too, and what only the full parse can see (a keyid that is
 * not the sha256 of its key) still fails as an invalid config, CONFIG_INVALID naming trustedRoot.
 */
const key = () => tufKey(generateKeyPairSync('ed25519').publicKey);
const rootKeys = [key(), key()];
const online = key();
const valid = (): Record<string, unknown> =>
  JSON.parse(
    JSON.stringify(
      buildRoot({ version: 1, expires: '2030-01-01T00:00:00Z', rootKeys, threshold: 2, onlineKeys: [online] }).toJSON(),
    ),
  );

type Doc = { signed: Record<string, any>; signatures: unknown[] };
const mutate = (f: (d: Doc) => void) => {
  const d = valid() as Doc;
  f(d);
  return d;
};

const BAD: [string, () => unknown, RegExp][] = [
  ['not an object', () => [1], /JSON object/],
  ['no signed part', () => ({ signatures: [] }), /signed must be an object/],
  ['signatures not a list', () => mutate((d) => (d.signatures = {} as never)), /signatures must be a list/],
  ['wrong _type', () => mutate((d) => (d.signed._type = 'targets')), /_type must be "root"/],
  ['version 0', () => mutate((d) => (d.signed.version = 0)), /not a positive integer/],
  ['bad expiry', () => mutate((d) => (d.signed.expires = 'soon')), /ISO 8601/],
  [
    'an RSA key',
    () => mutate((d) => ((Object.values(d.signed.keys)[0] as Record<string, string>).keytype = 'rsa')),
    /only ed25519/,
  ],
  ['no targets role', () => mutate((d) => delete d.signed.roles.targets), /role targets/],
  ['threshold over the keys', () => mutate((d) => (d.signed.roles.root.threshold = 3)), /threshold 3 but 2/],
  [
    'a role naming an unknown key',
    () => mutate((d) => (d.signed.roles.targets.keyids = ['a'.repeat(64)])),
    /not in keys/,
  ],
  ['a role naming a revoked key', () => mutate((d) => (d.signed['x-outpost-revoked'] = [online.keyID])), /revoked key/],
];

describe('trustedRoot: shape before READY, full parse after', () => {
  it('accepts what buildRoot writes, and the full parse agrees', () => {
    expect(rootShapeProblem(valid())).toBeUndefined();
    expect(parseRoot(valid()).signed.version).toBe(1);
  });

  it.each(BAD)('refuses %s, and so does the full parse', (_name, doc, why) => {
    expect(rootShapeProblem(doc())).toMatch(why);
    expect(codeOf(() => parseRoot(doc()))).toBe('TRUST_ROOT_MALFORMED');
    expect(codeOf(() => parseAgentConfig(config(doc()), 'agent.json'))).toBe('CONFIG_INVALID');
  });

  it('leaves the key material to the full parse, which fails as an invalid config', () => {
    // A keyid of the right form that is not the sha256 of its key: only reading the key shows it.
    const other = key().keyID;
    const doc = mutate((d) => {
      d.signed.keys[other] = d.signed.keys[online.keyID];
      delete d.signed.keys[online.keyID];
      d.signed.roles.targets.keyids = [other];
    });
    expect(rootShapeProblem(doc)).toBeUndefined();
    const parsed = parseAgentConfig(config(doc), 'agent.json');
    let err: unknown;
    try {
      checkAgentConfigRoot(parsed, 'agent.json');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'CONFIG_INVALID',
      details: { issues: [{ key: 'trustedRoot', source: 'agent.json' }] },
    });
    expect((err as Error).message).toMatch(
      /^trustedRoot must be TUF root metadata .*is not the sha256 of its public key \(in agent\.json\)$/,
    );
  });

  it('returns the parsed root, or null for a config without one', () => {
    expect(checkAgentConfigRoot(parseAgentConfig(config(valid()), 'f'), 'f')?.signed.version).toBe(1);
    const { trustedRoot: _drop, ...legacy } = config(valid());
    expect(checkAgentConfigRoot(parseAgentConfig(legacy, 'f'), 'f')).toBeNull();
  });
});

function config(trustedRoot: unknown): Record<string, unknown> {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    deviceId: 'shape-1',
    cloud: { http: 'http://127.0.0.1:1', mqtt: 'mqtt://127.0.0.1:1' },
    credentials: { username: 'shape-1', token: 'a-token-of-some-length' },
    trustedKeys: [{ keyid: 'k', publicKey: pem }],
    trustedRoot,
  };
}
