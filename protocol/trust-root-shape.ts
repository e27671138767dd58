/**
 * The shape of a root metadata document, checked without @tufjs/models or any key material: what
 * parseAgentConfig checks of `trustedRoot`, so that the agent starts (and serves its installed
 * models) without loading the TUF library, which costs it more start-up time than any other
 * module (docs/runtime.md, "Start-up").
 *
 * This is not the trust decision. The full parse (trust-root.ts parseRoot: @tufjs/models'
 * Metadata.fromJSON, each key read as an ed25519 public key, each keyid the sha256 of its key)
 * runs in `checkAgentConfigRoot` (agent-config-root.ts) before the agent builds its trust store
 * from the root, and nothing is verified with a root before that: the daemon runs it right after
 * READY, before its sync side exists, and exits 3 (config invalid) if it fails;
 * `outpost agent check-config` and `outpost device provision` run it too. The shape check catches
 * the mistakes an edited or truncated file makes, so those still exit 3 before READY.
 */
/** A keyid: the sha256 of the key's DER (SPKI) bytes, in hex. */
export const KEYID = /^[0-9a-f]{64}$/;
export const ONLINE_ROLE = 'targets';
export const REVOKED_FIELD = 'x-outpost-revoked';
export const MAX_REVOKED = 1024;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `value` is not a root document of the shape Outpost uses, or undefined when it is. */
export function rootShapeProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'must be a JSON object';
  const { signed, signatures } = value;
  if (!isObject(signed)) return 'signed must be an object';
  if (!Array.isArray(signatures) || !signatures.every((s) => isObject(s) && typeof s.keyid === 'string'))
    return 'signatures must be a list of {keyid, sig}';
  if (signed._type !== 'root') return `signed._type must be "root", got ${JSON.stringify(signed._type)}`;
  if (typeof signed.spec_version !== 'string') return 'signed.spec_version must be a string';
  if (!Number.isSafeInteger(signed.version) || (signed.version as number) < 1)
    return `version ${String(signed.version)} is not a positive integer`;
  if (typeof signed.expires !== 'string' || Number.isNaN(Date.parse(signed.expires)))
    return `expires "${String(signed.expires)}" is not an ISO 8601 time`;
  const keys = signed.keys;
  if (!isObject(keys)) return 'signed.keys must be an object';
  for (const [keyid, key] of Object.entries(keys)) {
    if (!KEYID.test(keyid)) return `keyid ${keyid} is not a sha256 in hex`;
    if (!isObject(key) || key.keytype !== 'ed25519' || key.scheme !== 'ed25519')
      return `key ${keyid} is not an ed25519 key; Outpost trusts only ed25519 keys`;
    if (!isObject(key.keyval) || typeof key.keyval.public !== 'string' || !key.keyval.public.includes('PUBLIC KEY'))
      return `key ${keyid} has no PEM public key in keyval.public`;
  }
  const roles = signed.roles;
  if (!isObject(roles)) return 'signed.roles must be an object';
  const revoked = signed[REVOKED_FIELD];
  if (
    revoked !== undefined &&
    (!Array.isArray(revoked) ||
      revoked.length > MAX_REVOKED ||
      !revoked.every((k) => typeof k === 'string' && KEYID.test(k)))
  )
    return `${REVOKED_FIELD} must be a list of at most ${MAX_REVOKED} keyids`;
  for (const name of ['root', ONLINE_ROLE]) {
    const role = roles[name];
    if (!isObject(role) || !Array.isArray(role.keyids) || !Number.isSafeInteger(role.threshold))
      return `role ${name} must have keyids and a threshold`;
    const ids = role.keyids as unknown[];
    if (ids.length === 0) return `role ${name} lists no keys`;
    if ((role.threshold as number) < 1 || (role.threshold as number) > ids.length)
      return `role ${name} has threshold ${String(role.threshold)} but ${ids.length} key(s)`;
    for (const id of ids) {
      if (typeof id !== 'string' || !keys[id]) return `role ${name} names key ${String(id)}, which is not in keys`;
      if (Array.isArray(revoked) && revoked.includes(id)) return `role ${name} names the revoked key ${id}`;
    }
  }
  return undefined;
}
