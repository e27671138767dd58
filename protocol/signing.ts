import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { OutpostError } from './errors/index.js';

/**
 * Verification half of Outpost's signed metadata (the cloud signs in cloud-broker/signing/).
 * Pure functions over node:crypto, shared by the agent and the cloud's own tests.
 *
 * - The signed bytes are the canonical JSON of the `signed` object (see canonicalJson).
 * - Signatures are ed25519 over those bytes, base64 encoded.
 * - A keyid is the lowercase hex sha256 of the public key's DER (SubjectPublicKeyInfo) bytes, so
 *   a keyid can always be recomputed from the key and never has to be trusted on its own.
 */

export interface Signature {
  keyid: string;
  /** base64 ed25519 signature of canonicalJson(signed). */
  sig: string;
}

export interface SignedEnvelope<T> {
  signed: T;
  signatures: Signature[];
}

/** A public key the device trusts, as agent.json carries it. */
export interface TrustedKey {
  keyid: string;
  /** PEM (SPKI) of an ed25519 public key. */
  publicKey: string;
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, strings escaped as
 * JSON.stringify does, numbers only as safe integers (fractions and exponents have several
 * spellings, so they are refused rather than normalised). Keys whose value is undefined are
 * dropped, as JSON.stringify drops them, so a signer's object and its parsed transport form give
 * the same bytes.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw new OutpostError('CANONICAL_JSON_INVALID', `${path} is ${value}: only safe integers can be signed`, {
          path,
        });
      }
      return Object.is(value, -0) ? '0' : String(value);
    case 'object': {
      if (Array.isArray(value)) {
        return `[${value
          .map((v, i) => {
            if (v === undefined)
              throw new OutpostError('CANONICAL_JSON_INVALID', `${path}[${i}] is undefined`, { path: `${path}[${i}]` });
            return encode(v, `${path}[${i}]`);
          })
          .join(',')}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new OutpostError(
          'CANONICAL_JSON_INVALID',
          `${path} is a ${proto?.constructor?.name ?? 'non-plain object'}, not a plain object`,
          { path },
        );
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(obj[k], `${path}.${k}`)}`).join(',')}}`;
    }
    default:
      throw new OutpostError('CANONICAL_JSON_INVALID', `${path} is of type ${typeof value}, which JSON cannot carry`, {
        path,
      });
  }
}

/** Lowercase hex sha256 of the DER SPKI bytes of a public key. */
export function keyIdOf(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

interface LoadedKey {
  keyid: string;
  key: KeyObject;
}

/**
 * Validates a trusted-key list once (at config load): each PEM must be an ed25519 public key
 * whose recomputed keyid equals the listed one. A mismatch is refused, never silently fixed.
 */
export function loadTrustedKeys(keys: readonly TrustedKey[]): Map<string, KeyObject> {
  const out = new Map<string, KeyObject>();
  keys.forEach((k, i) => {
    const loaded = loadKey(k, `trustedKeys[${i}]`);
    out.set(loaded.keyid, loaded.key);
  });
  return out;
}

function loadKey(k: TrustedKey, key: string): LoadedKey {
  if (!k || typeof k.publicKey !== 'string' || typeof k.keyid !== 'string') {
    throw new OutpostError('TRUSTED_KEY_INVALID', `${key} must be {keyid, publicKey (PEM)}`, { key });
  }
  let pub: KeyObject;
  try {
    pub = createPublicKey(k.publicKey);
  } catch (err) {
    throw new OutpostError(
      'TRUSTED_KEY_INVALID',
      `${key}.publicKey is not a PEM public key: ${(err as Error).message}`,
      { key },
    );
  }
  if (pub.asymmetricKeyType !== 'ed25519') {
    throw new OutpostError(
      'TRUSTED_KEY_INVALID',
      `${key}.publicKey is a ${pub.asymmetricKeyType} key; Outpost trusts only ed25519 keys`,
      { key },
    );
  }
  const keyid = keyIdOf(pub);
  if (keyid !== k.keyid) {
    throw new OutpostError(
      'TRUSTED_KEY_INVALID',
      `${key}.keyid "${k.keyid}" is not the sha256 of its public key (${keyid})`,
      { key, keyid: k.keyid, expected: keyid },
    );
  }
  return { keyid, key: pub };
}

/** The codes a refusal carries: desired states and commands each have their own. */
const REFUSALS = {
  desired: { bad: 'DESIRED_BAD_SIGNATURE', untrusted: 'DESIRED_UNTRUSTED_KEY', revoked: 'DESIRED_KEY_REVOKED' },
  command: { bad: 'COMMAND_BAD_SIGNATURE', untrusted: 'COMMAND_UNTRUSTED_KEY', revoked: 'COMMAND_KEY_REVOKED' },
} as const;

/**
 * Checks the signatures of an envelope whose `signed` part is already known to be canonicalisable.
 * Threshold 1: at least one signature by a trusted key must verify. A signature by a trusted key
 * that fails is reported as a bad signature even when another one verifies, because a trusted
 * key never produces a bad signature unless the bytes were altered. A document signed only by
 * keys the root revoked gets the revoked code, so an operator can tell a stale or forged
 * document by a retired key from one by a stranger.
 * Returns the keyid that verified.
 */
export function verifyEnvelope(
  envelope: SignedEnvelope<unknown>,
  trusted: ReadonlyMap<string, KeyObject>,
  opts: { revoked?: ReadonlySet<string>; kind?: keyof typeof REFUSALS } = {},
): string {
  const codes = REFUSALS[opts.kind ?? 'desired'];
  const bytes = Buffer.from(canonicalJson(envelope.signed), 'utf8');
  let good: string | null = null;
  let sawTrusted = false;
  for (const s of envelope.signatures) {
    const key = opts.revoked?.has(s.keyid) ? undefined : trusted.get(s.keyid);
    if (!key) continue;
    sawTrusted = true;
    const sig = Buffer.from(s.sig, 'base64');
    // ed25519 signatures are exactly 64 bytes; verify() would throw on other lengths in some versions.
    const ok = sig.length === 64 && verify(null, bytes, key, sig);
    if (!ok) {
      throw new OutpostError(
        codes.bad,
        `the signature by key ${s.keyid.slice(0, 12)}… does not verify: the document was changed after signing`,
        { keyid: s.keyid },
      );
    }
    good = s.keyid;
  }
  if (!sawTrusted || good === null) {
    const ids = envelope.signatures.map((s) => s.keyid.slice(0, 12));
    const revoked = envelope.signatures.filter((s) => opts.revoked?.has(s.keyid)).map((s) => s.keyid);
    if (revoked.length > 0) {
      throw new OutpostError(
        codes.revoked,
        `signed only by revoked key(s) ${revoked.map((k) => k.slice(0, 12)).join(', ')}; ignored (the cloud signs with its current online key)`,
        { keyids: revoked },
      );
    }
    throw new OutpostError(
      codes.untrusted,
      `no signature is by a trusted key (signed by: ${ids.join(', ') || 'nobody'}); re-provision the device with the cloud's public key`,
      { keyids: envelope.signatures.map((s) => s.keyid) },
    );
  }
  return good;
}
