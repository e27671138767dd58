import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openTestDb } from '../helpers/test-db.js';
import { ClusterSecrets } from '../../cloud-broker/secrets/store.js';
import { canonicalJson, keyIdOf, loadTrustedKeys, verifyEnvelope } from '../../protocol/signing.js';
import { silentLogger } from '../../protocol/log.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { loadOrCreateSigner, SIGNING_KEY_FILE } from '../../cloud-broker/signing/keys.js';

function newSigner() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return createSigner(privateKey, publicKey);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}',
    );
  });

  it('gives the same bytes for objects built in different key orders and after a JSON round trip', () => {
    const a = { models: [{ id: 'o/n', files: [{ size: 3, path: 'a' }] }], revision: 7, device: undefined };
    const b = JSON.parse(JSON.stringify({ revision: 7, models: [{ files: [{ path: 'a', size: 3 }], id: 'o/n' }] }));
    expect(canonicalJson(a)).toBe(canonicalJson(b));
  });

  it('escapes strings like JSON and keeps non-ASCII text', () => {
    expect(canonicalJson({ é: 'line\n"q"\u0001' })).toBe('{"é":"line\\n\\"q\\"\\u0001"}');
  });

  it('refuses fractions, non-finite numbers, functions and class instances', () => {
    expect(codeOf(() => canonicalJson({ a: 1.5 }))).toBe('CANONICAL_JSON_INVALID');
    expect(codeOf(() => canonicalJson({ a: Number.NaN }))).toBe('CANONICAL_JSON_INVALID');
    expect(codeOf(() => canonicalJson({ a: 2 ** 60 }))).toBe('CANONICAL_JSON_INVALID');
    expect(codeOf(() => canonicalJson({ a: () => 1 }))).toBe('CANONICAL_JSON_INVALID');
    expect(codeOf(() => canonicalJson({ a: new Date(0) }))).toBe('CANONICAL_JSON_INVALID');
    expect(codeOf(() => canonicalJson([undefined]))).toBe('CANONICAL_JSON_INVALID');
  });
});

describe('keys and envelopes', () => {
  it('keyid is the sha256 of the SPKI DER and is recomputed, not trusted', () => {
    const s = newSigner();
    expect(keyIdOf(s.publicKeyPem)).toBe(s.keyid);
    expect(s.keyid).toMatch(/^[0-9a-f]{64}$/);
    const other = newSigner();
    expect(codeOf(() => loadTrustedKeys([{ keyid: other.keyid, publicKey: s.publicKeyPem }]))).toBe(
      'TRUSTED_KEY_INVALID',
    );
  });

  it('refuses a non-ed25519 trusted key', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(codeOf(() => loadTrustedKeys([{ keyid: keyIdOf(pem), publicKey: pem }]))).toBe('TRUSTED_KEY_INVALID');
    expect(codeOf(() => loadTrustedKeys([{ keyid: 'x', publicKey: 'not a pem' }]))).toBe('TRUSTED_KEY_INVALID');
  });

  it('verifies a signed envelope and names the key', () => {
    const s = newSigner();
    const env = s.sign({ hello: 'world', n: 3 });
    expect(verifyEnvelope(env, loadTrustedKeys([s.trustedKey()]))).toBe(s.keyid);
  });

  it('a changed byte is a bad signature; an unknown signer is an untrusted key', () => {
    const s = newSigner();
    const env = s.sign({ hello: 'world', n: 3 });
    const trusted = loadTrustedKeys([s.trustedKey()]);
    expect(codeOf(() => verifyEnvelope({ ...env, signed: { hello: 'world', n: 4 } }, trusted))).toBe(
      'DESIRED_BAD_SIGNATURE',
    );
    const other = newSigner();
    expect(codeOf(() => verifyEnvelope(other.sign({ hello: 'world' }), trusted))).toBe('DESIRED_UNTRUSTED_KEY');
    // A forged signature under the trusted keyid (attacker copies the id) must not pass.
    const forged = other.sign({ hello: 'world' });
    forged.signatures[0].keyid = s.keyid;
    expect(codeOf(() => verifyEnvelope(forged, trusted))).toBe('DESIRED_BAD_SIGNATURE');
  });
});

describe('signing key in the database', () => {
  it('is generated once and read back with the same keyid (a second replica gets the first key)', async () => {
    const db = await openTestDb();
    const a = loadOrCreateSigner(new ClusterSecrets(db), silentLogger);
    const b = loadOrCreateSigner(new ClusterSecrets(db), silentLogger);
    expect(b.keyid).toBe(a.keyid);
    expect(verifyEnvelope(a.sign({ x: 1 }), loadTrustedKeys([b.trustedKey()]))).toBe(a.keyid);
    expect(new ClusterSecrets(db).get(SIGNING_KEY_FILE)).toMatch(/BEGIN PRIVATE KEY/);
    db.close();
  });

  it('a corrupt key is refused with its code, not replaced', async () => {
    const db = await openTestDb();
    new ClusterSecrets(db).insert(SIGNING_KEY_FILE, 'garbage');
    expect(codeOf(() => loadOrCreateSigner(new ClusterSecrets(db), silentLogger))).toBe('SIGNING_KEY_INVALID');
    expect(new ClusterSecrets(db).get(SIGNING_KEY_FILE)).toBe('garbage');
    db.close();
  });
});
