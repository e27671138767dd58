import type { KeyObject } from 'node:crypto';
import { createPublicKey } from 'node:crypto';
import { Key, Metadata, MetadataKind, type Root } from '@tufjs/models';
import { OutpostError } from './errors/index.js';
import { keyIdOf, type TrustedKey } from './signing.js';
import { KEYID, MAX_REVOKED, ONLINE_ROLE, REVOKED_FIELD } from './trust-root-shape.js';

export { MAX_REVOKED, ONLINE_ROLE, REVOKED_FIELD };

/**
 * The root of trust, as TUF root metadata (docs/security.md, "Keys"). The root role's keys
 * (threshold k of n, kept offline) sign the root; the root's `targets` role names the online
 * key(s) that sign desired states and commands, and the root's `expires` bounds that delegation.
 *
 * The root documents ARE TUF root metadata, parsed and verified by @tufjs/models (Metadata.fromJSON,
 * verifyDelegate), and the walk is tuf-js's client workflow 5.3 (its TrustedMetadataStore.updateRoot
 * and Updater.loadRoot), bounded as tuf-js bounds it. What Outpost adds on top:
 * - keys are ed25519 only, and a keyid must be the sha256 of the key's DER (SPKI) bytes, so two
 *   keyids can never name one key and "each keyid counted once" means "each key counted once";
 * - `x-outpost-revoked` (a signed, cumulative list of keyids) gives documents signed by a retired or
 *   revoked key a code of their own;
 * - desired states and commands keep Outpost's envelope (protocol/signing.ts), verified with the
 *   root's online keys; they are not TUF targets metadata.
 * Pure: no I/O; fetching is the caller's (agent/sync/trust-store.ts).
 */
export type RootMetadata = Metadata<Root>;

/** tuf-js's defaults (config.ts: maxRootRotations, rootMaxLength). */
export const MAX_ROOT_ROTATIONS = 256;
export const ROOT_MAX_BYTES = 512_000;
/** A legacy root (one key, provisioned before roots existed) never expires, as those keys never did. */
export const LEGACY_ROOT_EXPIRES = '9999-12-31T23:59:59Z';
export const ROOT_SPEC_VERSION = '1.0.31';

function malformed(what: string): OutpostError {
  return new OutpostError('TRUST_ROOT_MALFORMED', `root metadata: ${what}`);
}

/**
 * Parses one root document (raw bytes, a string or parsed JSON) and checks Outpost's rules on
 * top of TUF's shape. Bytes beyond ROOT_MAX_BYTES are refused before JSON.parse sees them.
 */
export function parseRoot(input: unknown): RootMetadata {
  let value = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    const size = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
    if (size > ROOT_MAX_BYTES)
      throw new OutpostError('TRUST_ROOT_TOO_LARGE', `root metadata of ${size} bytes exceeds ${ROOT_MAX_BYTES}`, {
        size,
      });
    try {
      value = JSON.parse(input.toString());
    } catch (err) {
      throw malformed(`not JSON (${(err as Error).message})`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('must be a JSON object');
  let md: RootMetadata;
  try {
    md = Metadata.fromJSON(MetadataKind.Root, value as never);
  } catch (err) {
    throw malformed((err as Error).message);
  }
  const s = md.signed;
  if (!Number.isSafeInteger(s.version) || s.version < 1)
    throw malformed(`version ${s.version} is not a positive integer`);
  if (Number.isNaN(Date.parse(s.expires))) throw malformed(`expires "${s.expires}" is not an ISO 8601 time`);
  for (const [keyid, key] of Object.entries(s.keys)) checkKey(keyid, key);
  for (const name of ['root', ONLINE_ROLE]) {
    const role = s.roles[name];
    if (role.keyIDs.length === 0) throw malformed(`role ${name} lists no keys`);
    if (role.threshold > role.keyIDs.length)
      throw malformed(`role ${name} has threshold ${role.threshold} but only ${role.keyIDs.length} key(s)`);
    for (const id of role.keyIDs)
      if (!s.keys[id]) throw malformed(`role ${name} names key ${id}, which is not in keys`);
  }
  const revoked = s.unrecognizedFields[REVOKED_FIELD];
  if (revoked !== undefined) {
    if (
      !Array.isArray(revoked) ||
      revoked.length > MAX_REVOKED ||
      !revoked.every((k) => typeof k === 'string' && KEYID.test(k))
    )
      throw malformed(`${REVOKED_FIELD} must be a list of at most ${MAX_REVOKED} keyids`);
    for (const name of ['root', ONLINE_ROLE])
      for (const id of s.roles[name].keyIDs)
        if ((revoked as string[]).includes(id)) throw malformed(`role ${name} names the revoked key ${id}`);
  }
  return md;
}

function checkKey(keyid: string, key: Key): void {
  if (key.keyType !== 'ed25519' || key.scheme !== 'ed25519')
    throw malformed(`key ${keyid} is ${key.keyType}/${key.scheme}; Outpost trusts only ed25519 keys`);
  let pub: KeyObject;
  try {
    pub = createPublicKey(key.keyVal.public ?? '');
  } catch {
    throw malformed(`key ${keyid} has no PEM public key in keyval.public`);
  }
  if (pub.asymmetricKeyType !== 'ed25519') throw malformed(`key ${keyid} is not an ed25519 key`);
  if (keyIdOf(pub) !== keyid) throw malformed(`keyid ${keyid} is not the sha256 of its public key`);
}

/** A TUF key entry for an ed25519 public key; the keyid is Outpost's (sha256 of the DER). */
export function tufKey(publicKey: KeyObject | string): Key {
  const pub = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return new Key({
    keyID: keyIdOf(pub),
    keyType: 'ed25519',
    scheme: 'ed25519',
    keyVal: { public: pub.export({ type: 'spki', format: 'pem' }).toString() },
  });
}

export interface RootSpec {
  version: number;
  expires: string;
  rootKeys: readonly Key[];
  threshold: number;
  onlineKeys: readonly Key[];
  revoked?: readonly string[];
}

/** The signed part of a root (unsigned Metadata); the cloud and the CLI sign it. */
export function buildRoot(spec: RootSpec): RootMetadata {
  const keys: Record<string, unknown> = {};
  for (const k of [...spec.rootKeys, ...spec.onlineKeys]) keys[k.keyID] = k.toJSON();
  const role = (ks: readonly Key[], threshold: number) => ({ keyids: ks.map((k) => k.keyID), threshold });
  // snapshot and timestamp are required TUF roles that Outpost does not use: they name the
  // online key so that the document stays valid TUF; freshness comes from each document's expiry.
  const signed = {
    _type: 'root',
    spec_version: ROOT_SPEC_VERSION,
    version: spec.version,
    expires: spec.expires,
    consistent_snapshot: false,
    keys,
    roles: {
      root: role(spec.rootKeys, spec.threshold),
      targets: role(spec.onlineKeys, 1),
      snapshot: role(spec.onlineKeys, 1),
      timestamp: role(spec.onlineKeys, 1),
    },
    ...(spec.revoked && spec.revoked.length > 0 ? { [REVOKED_FIELD]: [...spec.revoked] } : {}),
  };
  return Metadata.fromJSON(MetadataKind.Root, { signed, signatures: [] } as never);
}

/**
 * The root a device provisioned before roots existed trusts: its trustedKeys as root v1, each
 * key both root key and online key, threshold 1. `outpost keys init` publishes exactly this as
 * 1.root.json (signed by the legacy key) and the real root as version 2, signed by the legacy key
 * (v1's threshold) and by the new root keys, so an untouched old device walks to it by TUF's rules.
 */
export function legacyRoot(trustedKeys: readonly TrustedKey[]): RootMetadata {
  const keys = trustedKeys.map((k) => tufKey(k.publicKey));
  return buildRoot({ version: 1, expires: LEGACY_ROOT_EXPIRES, rootKeys: keys, threshold: 1, onlineKeys: keys });
}

/**
 * TUF client workflow 5.3.4-5.3.7 for one step, as tuf-js's TrustedMetadataStore.updateRoot: the
 * new root must be signed by a threshold of the trusted root's root keys, carry exactly version
 * N+1, and be signed by a threshold of its own root keys. Expiry is not checked here (only the
 * final root's is, by onlineKeysOf).
 */
export function updateRoot(trusted: RootMetadata, input: unknown): RootMetadata {
  const next = parseRoot(input);
  const want = trusted.signed.version + 1;
  try {
    trusted.verifyDelegate('root', next);
  } catch (err) {
    throw new OutpostError(
      'TRUST_ROOT_THRESHOLD',
      `root v${next.signed.version} is not signed by a threshold of root v${trusted.signed.version}'s keys (${(err as Error).message})`,
      { version: next.signed.version, trusted: trusted.signed.version },
    );
  }
  if (next.signed.version !== want)
    throw new OutpostError('TRUST_ROOT_VERSION', `expected root version ${want}, got ${next.signed.version}`, {
      expected: want,
      version: next.signed.version,
    });
  try {
    next.verifyDelegate('root', next);
  } catch (err) {
    throw new OutpostError(
      'TRUST_ROOT_THRESHOLD',
      `root v${next.signed.version} is not signed by a threshold of its own root keys (${(err as Error).message})`,
      { version: next.signed.version },
    );
  }
  return next;
}

export interface WalkOptions {
  /** Bytes of root version v, or null when the cloud has none (404: the end of the chain). */
  fetch: (version: number) => Promise<Buffer | null>;
  /** Called after each verified step, so that a walk cut halfway keeps its progress (tuf-js persists each root). */
  onStep?: (root: RootMetadata) => void | Promise<void>;
  maxRotations?: number;
}

/**
 * Walks the chain from the trusted root, version by version (Updater.loadRoot). At most
 * maxRotations steps per walk; when more are served the walk stops there with
 * TRUST_CHAIN_TOO_LONG, having kept (through onStep) the roots it verified.
 */
export async function walkRootChain(trusted: RootMetadata, opts: WalkOptions): Promise<RootMetadata> {
  const max = opts.maxRotations ?? MAX_ROOT_ROTATIONS;
  let root = trusted;
  for (let i = 0; ; i++) {
    const bytes = await opts.fetch(root.signed.version + 1);
    if (bytes === null) return root;
    if (i >= max)
      throw new OutpostError(
        'TRUST_CHAIN_TOO_LONG',
        `more than ${max} root rotations in one walk (stopped at v${root.signed.version}); the next refresh continues`,
        { version: root.signed.version, max },
      );
    root = updateRoot(root, bytes);
    await opts.onStep?.(root);
  }
}

/** What verifies desired states and commands under a root; TRUST_ROOT_EXPIRED once it expired. */
export interface OnlineTrust {
  version: number;
  keys: TrustedKey[];
  revoked: ReadonlySet<string>;
}

export function onlineKeysOf(root: RootMetadata, now: Date): OnlineTrust {
  const s = root.signed;
  if (s.isExpired(now))
    throw new OutpostError(
      'TRUST_ROOT_EXPIRED',
      `the trusted root v${s.version} expired at ${s.expires}; new documents are refused until a renewed root is published`,
      { version: s.version, expires: s.expires },
    );
  return {
    version: s.version,
    keys: s.roles[ONLINE_ROLE].keyIDs.map((id) => ({ keyid: id, publicKey: s.keys[id].keyVal.public })),
    revoked: revokedOf(root),
  };
}

export function revokedOf(root: RootMetadata): Set<string> {
  const r = root.signed.unrecognizedFields[REVOKED_FIELD];
  return new Set(Array.isArray(r) ? (r as string[]) : []);
}

/** The canonical serialised form of a root (what the cloud stores and serves). */
export function serializeRoot(root: RootMetadata): string {
  return JSON.stringify(root.toJSON());
}
