import { OutpostError } from './errors/index.js';
import { parseModelId } from './ids.js';
import {
  FRAMEWORKS,
  HAILO_ARCHITECTURES,
  PURPOSES,
  TRT_ARCHITECTURES,
  TRT_DEVICES,
  type Architecture,
  type Framework,
  type Purpose,
  type TrtDevice,
} from './manifest-types.js';
import {
  canonicalJson,
  loadTrustedKeys,
  verifyEnvelope,
  type Signature,
  type SignedEnvelope,
  type TrustedKey,
} from './signing.js';
import { isDeviceId } from './topics.js';

/**
 * The desired-state document: what the cloud wants one device to hold. It travels as a retained
 * MQTT message on outpost/v1/devices/{id}/desired and follows TUF's threat model (docs/security.md):
 * every byte the device acts on is inside `signed`; `revision` only grows per device; `expires`
 * bounds how long a captured document can be replayed; `device` binds it to one device; each file
 * has its sha256 and exact size, so a download can be checked while it streams.
 */
export interface DesiredFile {
  /** Relative POSIX path inside the model version folder. */
  path: string;
  sha256: string;
  size: number;
}

export interface DesiredModel {
  /** `owner/name`. */
  id: string;
  version: number;
  framework: Framework;
  purpose: Purpose;
  /** tensor-rt only: the device type the engine was built for. */
  device?: TrtDevice;
  architecture?: Architecture;
  files: DesiredFile[];
  /** Base URL of the blob store ending in `/`; the blob of a file is `blobBase + sha256`. */
  blobBase?: string;
}

export interface DesiredSigned {
  type: 'desired';
  device: string;
  /** Per-device counter; a device refuses any revision lower than one it has applied. */
  revision: number;
  /** ISO 8601 times. */
  issued: string;
  expires: string;
  models: DesiredModel[];
}

export type DesiredEnvelope = SignedEnvelope<DesiredSigned>;
/** A document that passed verifyDesired; only these may drive the device. */
export type DesiredState = Readonly<DesiredSigned> & { readonly keyid: string };

export interface VerifyOptions {
  /** The online keys of the trusted root (or the legacy trustedKeys of agent.json). */
  trustedKeys: readonly TrustedKey[];
  /** Keyids the trusted root revoked: documents signed only by them get DESIRED_KEY_REVOKED. */
  revoked?: ReadonlySet<string>;
  deviceId: string;
  now: Date;
  /** The highest revision this device has applied; null before the first one. */
  lastRevision: number | null;
}

const SHA256 = /^[0-9a-f]{64}$/;
const KEYID = /^[0-9a-f]{64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const ARCHITECTURES: readonly string[] = [...new Set<string>([...TRT_ARCHITECTURES, ...HAILO_ARCHITECTURES])];

function malformed(key: string, what: string, value?: unknown): OutpostError {
  const shown = value === undefined ? '' : `, got ${JSON.stringify(value)?.slice(0, 80)}`;
  return new OutpostError('DESIRED_MALFORMED', `desired state: ${key} ${what}${shown}`, { key });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A path the device may create inside a model folder: relative, POSIX, no empty, `.` or `..`
 * segments, no backslash or NUL (so that no platform can read it as something else).
 */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.length > 512 || p.startsWith('/') || /[\\\0]/.test(p) || /^[A-Za-z]:/.test(p)) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function parseIso(v: unknown, key: string): string {
  if (typeof v !== 'string' || !ISO.test(v) || Number.isNaN(Date.parse(v)))
    throw malformed(key, 'must be an ISO 8601 time like 2026-01-31T12:00:00Z', v);
  return v;
}

function parseFile(v: unknown, key: string): DesiredFile {
  if (!isObject(v)) throw malformed(key, 'must be an object {path, sha256, size}', v);
  if (typeof v.path !== 'string') throw malformed(`${key}.path`, 'must be a string', v.path);
  if (!isSafeRelativePath(v.path)) {
    throw new OutpostError(
      'DESIRED_UNSAFE_PATH',
      `desired state: ${key}.path "${v.path.slice(0, 120)}" is absolute or leaves the model folder; the document is refused`,
      { key: `${key}.path`, value: v.path },
    );
  }
  if (typeof v.sha256 !== 'string' || !SHA256.test(v.sha256))
    throw malformed(`${key}.sha256`, 'must be 64 lowercase hex digits', v.sha256);
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    throw malformed(`${key}.size`, 'must be a non-negative integer', v.size);
  return { path: v.path, sha256: v.sha256, size: v.size };
}

function parseModel(v: unknown, key: string): DesiredModel {
  if (!isObject(v)) throw malformed(key, 'must be an object', v);
  try {
    parseModelId(v.id, `${key}.id`);
  } catch {
    throw malformed(`${key}.id`, 'must be "owner/name"', v.id);
  }
  const id = v.id as string;
  if (typeof v.version !== 'number' || !Number.isSafeInteger(v.version) || v.version < 1)
    throw malformed(`${key}.version`, 'must be a positive integer', v.version);
  if (!FRAMEWORKS.includes(v.framework as Framework))
    throw malformed(`${key}.framework`, `must be one of ${FRAMEWORKS.join(', ')}`, v.framework);
  if (!PURPOSES.includes(v.purpose as Purpose))
    throw malformed(`${key}.purpose`, `must be one of ${PURPOSES.join(', ')}`, v.purpose);
  const out: DesiredModel = {
    id,
    version: v.version,
    framework: v.framework as Framework,
    purpose: v.purpose as Purpose,
    files: [],
  };
  if (v.device !== undefined) {
    if (!TRT_DEVICES.includes(v.device as TrtDevice))
      throw malformed(`${key}.device`, `must be one of ${TRT_DEVICES.join(', ')}`, v.device);
    out.device = v.device as TrtDevice;
  }
  if (v.architecture !== undefined) {
    if (!ARCHITECTURES.includes(v.architecture as string))
      throw malformed(`${key}.architecture`, `must be one of ${ARCHITECTURES.join(', ')}`, v.architecture);
    out.architecture = v.architecture as Architecture;
  }
  if (v.blobBase !== undefined) {
    if (typeof v.blobBase !== 'string' || !/^https?:\/\/[^\s]+\/$/.test(v.blobBase))
      throw malformed(`${key}.blobBase`, 'must be an http(s) URL ending in /', v.blobBase);
    out.blobBase = v.blobBase;
  }
  if (!Array.isArray(v.files) || v.files.length === 0)
    throw malformed(`${key}.files`, 'must be a non-empty array', v.files);
  const seen = new Set<string>();
  v.files.forEach((f, i) => {
    const file = parseFile(f, `${key}.files[${i}]`);
    if (seen.has(file.path)) throw malformed(`${key}.files[${i}].path`, 'is listed twice', file.path);
    seen.add(file.path);
    out.files.push(file);
  });
  return out;
}

/**
 * Parses the `signed` part without looking at signatures: the cloud uses it to check what it is
 * about to sign, the device only through verifyDesired.
 */
export function parseDesiredSigned(v: unknown): DesiredSigned {
  if (!isObject(v)) throw malformed('signed', 'must be an object', v);
  if (v.type !== 'desired') throw malformed('signed.type', 'must be "desired"', v.type);
  if (!isDeviceId(v.device)) throw malformed('signed.device', 'must be a device id', v.device);
  if (typeof v.revision !== 'number' || !Number.isSafeInteger(v.revision) || v.revision < 1)
    throw malformed('signed.revision', 'must be a positive integer', v.revision);
  const issued = parseIso(v.issued, 'signed.issued');
  const expires = parseIso(v.expires, 'signed.expires');
  if (!Array.isArray(v.models)) throw malformed('signed.models', 'must be an array', v.models);
  const models: DesiredModel[] = [];
  const ids = new Set<string>();
  v.models.forEach((m, i) => {
    const model = parseModel(m, `signed.models[${i}]`);
    if (ids.has(model.id)) throw malformed(`signed.models[${i}].id`, 'is listed twice', model.id);
    ids.add(model.id);
    models.push(model);
  });
  const known = new Set(['type', 'device', 'revision', 'issued', 'expires', 'models']);
  const extra = Object.keys(v).filter((k) => !known.has(k));
  if (extra.length > 0) throw malformed('signed', `has unknown keys ${extra.join(', ')}`);
  return { type: 'desired', device: v.device, revision: v.revision, issued, expires, models };
}

/** Checks only the envelope's shape: {signed: object, signatures: [{keyid, sig}]}. */
export function parseEnvelope(doc: unknown): SignedEnvelope<unknown> {
  if (!isObject(doc)) throw malformed('document', 'must be a JSON object {signed, signatures}', typeof doc);
  if (!isObject(doc.signed)) throw malformed('signed', 'must be an object', doc.signed);
  if (!Array.isArray(doc.signatures) || doc.signatures.length === 0)
    throw malformed('signatures', 'must be a non-empty array', doc.signatures);
  // Array.from visits holes ([,] parses to one): map would skip them and leave holes behind.
  const signatures: Signature[] = Array.from(doc.signatures as unknown[], (s, i) => {
    if (
      !isObject(s) ||
      typeof s.keyid !== 'string' ||
      !KEYID.test(s.keyid) ||
      typeof s.sig !== 'string' ||
      !/^[A-Za-z0-9+/]+={0,2}$/.test(s.sig)
    ) {
      throw malformed(`signatures[${i}]`, 'must be {keyid: 64 hex digits, sig: base64}');
    }
    return { keyid: s.keyid, sig: s.sig };
  });
  try {
    canonicalJson(doc.signed);
  } catch (err) {
    throw malformed('signed', `cannot be canonicalised: ${(err as Error).message}`);
  }
  return { signed: doc.signed, signatures };
}

/**
 * Verifies a received desired-state document, in TUF's order: shape, signatures (threshold 1 of
 * the trusted keys), content, binding to this device, revision (no rollback), expiry (no freeze).
 * Accepts either the parsed JSON or the raw MQTT payload. Each rejection has its own code.
 * A revision equal to lastRevision is accepted: it is the same retained document delivered again
 * after a reconnect (the cloud never signs two documents with one revision for a device).
 */
export function verifyDesired(doc: unknown, opts: VerifyOptions): DesiredState {
  let value = doc;
  if (typeof doc === 'string' || Buffer.isBuffer(doc)) {
    try {
      value = JSON.parse(doc.toString());
    } catch (err) {
      throw malformed('document', `is not JSON (${(err as Error).message})`);
    }
  }
  const envelope = parseEnvelope(value);
  const keyid = verifyEnvelope(envelope, loadTrustedKeys(opts.trustedKeys), { revoked: opts.revoked });
  const signed = parseDesiredSigned(envelope.signed);
  if (signed.device !== opts.deviceId) {
    throw new OutpostError(
      'DESIRED_WRONG_DEVICE',
      `desired state is for device "${signed.device}", this is "${opts.deviceId}"; ignored`,
      { device: signed.device, expected: opts.deviceId },
    );
  }
  if (opts.lastRevision !== null && signed.revision < opts.lastRevision) {
    throw new OutpostError(
      'DESIRED_ROLLBACK',
      `desired state revision ${signed.revision} is older than the applied revision ${opts.lastRevision} (replayed document); ignored`,
      { revision: signed.revision, lastRevision: opts.lastRevision },
    );
  }
  if (Date.parse(signed.expires) <= opts.now.getTime()) {
    throw new OutpostError(
      'DESIRED_EXPIRED',
      `desired state revision ${signed.revision} expired at ${signed.expires}; keeping the current models until the cloud publishes a fresh one`,
      { revision: signed.revision, expires: signed.expires },
    );
  }
  return Object.freeze({ ...signed, keyid });
}

/** Where the device downloads one file of a desired model. */
export function blobUrlOf(model: DesiredModel, file: DesiredFile, defaultBase: string): string {
  const base = model.blobBase ?? (defaultBase.endsWith('/') ? defaultBase : `${defaultBase}/`);
  return `${base}${file.sha256}`;
}
