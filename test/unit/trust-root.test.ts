import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { Metadata, MetadataKind } from '@tufjs/models';
import {
  legacyRoot,
  onlineKeysOf,
  parseRoot,
  serializeRoot,
  tufKey,
  updateRoot,
  walkRootChain,
  ROOT_MAX_BYTES,
  MAX_ROOT_ROTATIONS,
  type RootMetadata,
} from '../../protocol/trust-root.js';
import { verifyDesired, type DesiredSigned } from '../../protocol/desired-state.js';
import { generateRootKey, signRoot, type RootKey } from '../../cloud-broker/signing/root-keys.js';
import { planInit, planRevokeRootKey, planRotateOnline, planRotateRoot } from '../../cloud-broker/signing/root-plan.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { codeOf, codeOfRejection } from '../helpers/error-code.js';

/**
 * The pure rules of the root chain (protocol/trust-root.ts), TUF's client workflow 5.3: each
 * rotation path, each refusal with its code. The same rules are exercised end to end with a real
 * cloud and real agent processes in test/integration/keys-rotation.test.ts.
 */
const EXPIRES = '2030-01-01T00:00:00Z';
const NOW = new Date('2026-06-01T00:00:00Z');

function signer() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { s: createSigner(privateKey, publicKey), privateKey };
}

const legacy = signer();
const v1 = legacyRoot([legacy.s.trustedKey()]);
const rootKeys = [generateRootKey(), generateRootKey(), generateRootKey()];
const pub = (ks: RootKey[]) => ks.map((k) => tufKey(k.publicKey));

function signed(root: RootMetadata, keys: { keyid: string; privateKey: import('node:crypto').KeyObject }[]): Buffer {
  const copy = parseRoot(serializeRoot(root));
  for (const k of keys) signRoot(copy, k);
  return Buffer.from(serializeRoot(copy));
}

const legacyKey = { keyid: legacy.s.keyid, privateKey: legacy.privateKey };
/** v2 as `keys init` makes it: 2 of 3 root keys, the legacy key staying online, co-signed by it. */
const v2 = () =>
  planInit({ online: tufKey(legacy.s.publicKeyPem), rootKeys: pub(rootKeys), threshold: 2, expires: EXPIRES });
const v2Bytes = signed(v2(), [legacyKey, ...rootKeys]);

describe('root chain (TUF client workflow 5.3)', () => {
  it("the legacy trustedKeys of an old agent.json are root v1; keys init's v2 verifies over them", () => {
    expect(onlineKeysOf(v1, NOW).keys.map((k) => k.keyid)).toEqual([legacy.s.keyid]);
    const next = updateRoot(v1, v2Bytes);
    expect(next.signed.version).toBe(2);
    expect(next.signed.roles.root.threshold).toBe(2);
    expect(onlineKeysOf(next, NOW).keys.map((k) => k.keyid)).toEqual([legacy.s.keyid]);
  });

  it("refuses v2 that the legacy key (v1's threshold) did not sign", () => {
    expect(codeOf(() => updateRoot(v1, signed(v2(), rootKeys)))).toBe('TRUST_ROOT_THRESHOLD');
  });

  it('online rotation: the new key is trusted and the old one is listed as revoked', () => {
    const r2 = updateRoot(v1, v2Bytes);
    const fresh = signer();
    const r3 = updateRoot(
      r2,
      signed(planRotateOnline(r2, tufKey(fresh.s.publicKeyPem), EXPIRES), rootKeys.slice(0, 2)),
    );
    const online = onlineKeysOf(r3, NOW);
    expect(online.keys.map((k) => k.keyid)).toEqual([fresh.s.keyid]);
    expect([...online.revoked]).toEqual([legacy.s.keyid]);
  });

  it("root rotation needs the old threshold AND the new keys' threshold, each key counted once", () => {
    const r2 = updateRoot(v1, v2Bytes);
    const fresh = [generateRootKey(), generateRootKey()];
    const plan = planRotateRoot(r2, pub(fresh), 2, EXPIRES);
    expect(updateRoot(r2, signed(plan, [rootKeys[0], rootKeys[2], ...fresh])).signed.roles.root.keyIDs).toEqual(
      fresh.map((k) => k.keyid),
    );
    // Old threshold not met (1 of 2).
    expect(codeOf(() => updateRoot(r2, signed(plan, [rootKeys[0], ...fresh])))).toBe('TRUST_ROOT_THRESHOLD');
    // New keys' own threshold not met.
    expect(codeOf(() => updateRoot(r2, signed(plan, [rootKeys[0], rootKeys[1], fresh[0]])))).toBe(
      'TRUST_ROOT_THRESHOLD',
    );
    // One key's signature twice is refused outright: it must not count as two.
    const doubled = JSON.parse(signed(plan, [rootKeys[0], ...fresh]).toString()) as { signatures: unknown[] };
    doubled.signatures.push(doubled.signatures[0]);
    expect(codeOf(() => updateRoot(r2, Buffer.from(JSON.stringify(doubled))))).toBe('TRUST_ROOT_MALFORMED');
  });

  it("one key listed under a second keyid cannot count twice: the keyid must be the key's hash", () => {
    const r2 = JSON.parse(serializeRoot(v2())) as {
      signed: { keys: Record<string, unknown>; roles: { root: { keyids: string[] } } };
    };
    const alias = 'f'.repeat(64);
    r2.signed.keys[alias] = r2.signed.keys[rootKeys[0].keyid];
    r2.signed.roles.root.keyids.push(alias);
    expect(codeOf(() => parseRoot(r2))).toBe('TRUST_ROOT_MALFORMED');
  });

  it('refuses a root whose version is not exactly N+1 (a replayed root or a skipped one)', () => {
    const r2 = updateRoot(v1, v2Bytes);
    expect(codeOf(() => updateRoot(r2, v2Bytes))).toBe('TRUST_ROOT_VERSION');
    const skip = planRotateOnline(r2, tufKey(signer().s.publicKeyPem), EXPIRES);
    const json = JSON.parse(serializeRoot(skip));
    json.signed.version = 4;
    const md = Metadata.fromJSON(MetadataKind.Root, json);
    expect(codeOf(() => updateRoot(r2, signed(md, rootKeys)))).toBe('TRUST_ROOT_VERSION');
  });

  it('refuses a root over 512,000 bytes before parsing it', () => {
    const big = Buffer.alloc(ROOT_MAX_BYTES + 1, 0x20);
    expect(codeOf(() => updateRoot(v1, big))).toBe('TRUST_ROOT_TOO_LARGE');
  });

  it("checks only the final root's expiry: an expired intermediate root is walked through", async () => {
    const r2 = updateRoot(v1, v2Bytes);
    const old = planRotateOnline(r2, tufKey(signer().s.publicKeyPem), '2020-01-01T00:00:00Z');
    const r3 = updateRoot(r2, signed(old, rootKeys));
    expect(codeOf(() => onlineKeysOf(r3, NOW))).toBe('TRUST_ROOT_EXPIRED');
    const r4 = updateRoot(r3, signed(planRotateOnline(r3, tufKey(signer().s.publicKeyPem), EXPIRES), rootKeys));
    expect(onlineKeysOf(r4, NOW).version).toBe(4);
  });

  it('a device offline across several rotations walks them one by one and persists each step', async () => {
    const chain = new Map<number, Buffer>([[2, v2Bytes]]);
    let r = updateRoot(v1, v2Bytes);
    for (let v = 3; v <= 6; v++) {
      const plan =
        v === 4
          ? planRotateRoot(r, pub(rootKeys.slice(0, 2)), 2, EXPIRES)
          : v === 5
            ? planRevokeRootKey(r, rootKeys[1].keyid, EXPIRES, 1)
            : planRotateOnline(r, tufKey(signer().s.publicKeyPem), EXPIRES);
      const bytes = signed(plan, rootKeys);
      r = updateRoot(r, bytes);
      chain.set(v, bytes);
    }
    const steps: number[] = [];
    const end = await walkRootChain(v1, {
      fetch: async (v) => chain.get(v) ?? null,
      onStep: (root) => void steps.push(root.signed.version),
    });
    expect(steps).toEqual([2, 3, 4, 5, 6]);
    expect(end.signed.roles.root.keyIDs).toEqual([rootKeys[0].keyid]);
    expect(revokedKeys(end)).toContain(rootKeys[1].keyid);
  });

  it('stops a walk longer than the bound with TRUST_CHAIN_TOO_LONG, keeping the verified steps', async () => {
    const chain = new Map<number, Buffer>([[2, v2Bytes]]);
    let r = updateRoot(v1, v2Bytes);
    for (let v = 3; v <= 6; v++) {
      const bytes = signed(planRotateOnline(r, tufKey(signer().s.publicKeyPem), EXPIRES), rootKeys);
      r = updateRoot(r, bytes);
      chain.set(v, bytes);
    }
    const fetched: number[] = [];
    const steps: number[] = [];
    const code = await codeOfRejection(
      walkRootChain(v1, {
        maxRotations: 3,
        fetch: async (v) => {
          fetched.push(v);
          return chain.get(v) ?? null;
        },
        onStep: (root) => void steps.push(root.signed.version),
      }),
    );
    expect(code).toBe('TRUST_CHAIN_TOO_LONG');
    expect(steps).toEqual([2, 3, 4]);
    expect(fetched).toEqual([2, 3, 4, 5]);
  });

  it(`the default bound is tuf-js's: ${MAX_ROOT_ROTATIONS} rotations per walk`, async () => {
    const chain = new Map<number, Buffer>([[2, v2Bytes]]);
    let r = updateRoot(v1, v2Bytes);
    const online = tufKey(signer().s.publicKeyPem);
    for (let v = 3; v <= MAX_ROOT_ROTATIONS + 2; v++) {
      const bytes = signed(planRotateOnline(r, online, EXPIRES), rootKeys.slice(0, 2));
      r = updateRoot(r, bytes);
      chain.set(v, bytes);
    }
    let last = 0;
    const code = await codeOfRejection(
      walkRootChain(v1, {
        fetch: async (v) => chain.get(v) ?? null,
        onStep: (root) => void (last = root.signed.version),
      }),
    );
    expect(code).toBe('TRUST_CHAIN_TOO_LONG');
    expect(last).toBe(1 + MAX_ROOT_ROTATIONS);
    expect(MAX_ROOT_ROTATIONS).toBe(256);
    expect(ROOT_MAX_BYTES).toBe(512_000);
  }, 120_000);

  it("a desired state signed by a revoked key is refused with DESIRED_KEY_REVOKED, a stranger's with DESIRED_UNTRUSTED_KEY", () => {
    const r2 = updateRoot(v1, v2Bytes);
    const fresh = signer();
    const r3 = updateRoot(r2, signed(planRotateOnline(r2, tufKey(fresh.s.publicKeyPem), EXPIRES), rootKeys));
    const online = onlineKeysOf(r3, NOW);
    const doc: DesiredSigned = {
      type: 'desired',
      device: 'd1',
      revision: 1,
      issued: '2026-05-31T00:00:00Z',
      expires: '2026-06-07T00:00:00Z',
      models: [],
    };
    const opts = { trustedKeys: online.keys, revoked: online.revoked, deviceId: 'd1', now: NOW, lastRevision: null };
    expect(verifyDesired(fresh.s.sign(doc), opts).keyid).toBe(fresh.s.keyid);
    expect(codeOf(() => verifyDesired(legacy.s.sign(doc), opts))).toBe('DESIRED_KEY_REVOKED');
    expect(codeOf(() => verifyDesired(signer().s.sign(doc), opts))).toBe('DESIRED_UNTRUSTED_KEY');
  });

  it('refuses roots with non-ed25519 keys, missing roles or a threshold above the key count', () => {
    const base = () => JSON.parse(serializeRoot(v2()));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    const a = base();
    a.signed.keys[rootKeys[0].keyid] = { keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: rsa } };
    const b = base();
    delete b.signed.roles.targets;
    const c = base();
    c.signed.roles.root.threshold = 4;
    for (const bad of [a, b, c, 'not json', [], { signed: {} }])
      expect(codeOf(() => parseRoot(bad))).toBe('TRUST_ROOT_MALFORMED');
  });
});

function revokedKeys(r: RootMetadata): string[] {
  return [...onlineKeysOf(r, NOW).revoked];
}
