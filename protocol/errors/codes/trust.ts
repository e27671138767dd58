import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/**
 * Codes of the root of trust (root chain, online-key delegation, `outpost keys`) and of signed
 * imperative commands (docs/security.md, "Keys" and "Signed commands").
 */
export const TRUST = {
  TRUST_ROOT_MALFORMED: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A root metadata document is not TUF root metadata of the shape Outpost uses (ed25519 keys whose keyid is the sha256 of the key, roles root and targets, a version and an expiry); the message names the field. It is refused and the device keeps the root it trusts.',
  },
  TRUST_ROOT_TOO_LARGE: {
    status: 413,
    exit: EXIT.INTEGRITY,
    hint: 'A root metadata document is larger than 512,000 bytes (the bound tuf-js uses). It is refused without being parsed: a real root is a few kilobytes, so check what serves /v1/trust/root/.',
  },
  TRUST_ROOT_THRESHOLD: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: "A new root is not signed by enough keys: root N+1 needs the threshold of root N's root keys AND the threshold of its own root keys (each key counted once). Sign it with more root keys (`outpost keys rotate-root --root-keys DIR` with the folders of enough old and new keys).",
  },
  TRUST_ROOT_VERSION: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A root document served as version N+1 carries another version number (a replayed or skipped root). It is refused; the root chain must go up one version at a time.',
  },
  TRUST_ROOT_RACE: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'Another replica installed a root of the same version while this one was checking it (two `outpost keys` commands at once). Nothing was changed by this request: run the command again; it starts from the newest root.',
  },
  CLUSTER_SECRET_CONFLICT: {
    status: 500,
    exit: EXIT.CONFLICT,
    hint: "A key file in this replica's data dir differs from the one the database already holds under the same name: the data dir belonged to another cloud. The database's key is the cluster's; move the file away (keep it as a backup) and start again, or point --database at that cloud's own database.",
  },
  TRUST_ROOT_EXPIRED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'The newest trusted root is past its expiry, so the device refuses new desired states and commands (freeze protection) and keeps serving its current models. Renew it: `outpost keys rotate-online --root-keys DIR` signs a new root with a fresh expiry.',
  },
  TRUST_CHAIN_TOO_LONG: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'The device walked the maximum number of root rotations in one refresh (256, as tuf-js) and more were still served. The roots it verified are kept; the next refresh continues. A real chain this long means something is publishing roots in a loop.',
  },
  TRUST_FETCH_FAILED: {
    status: 502,
    exit: EXIT.UNAVAILABLE,
    hint: 'The device could not fetch the root chain from the cloud (network, or an HTTP status other than 200/404). It keeps the root it trusts and retries on the next unknown key.',
  },
  TRUST_NOT_INITIALIZED: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'The cloud has no root of trust yet: it signs with its single legacy key. Run `outpost keys init --out DIR` to create root keys (keep DIR offline) and the first root.',
  },
  TRUST_ALREADY_INITIALIZED: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'The cloud already has a root of trust. Change its keys with `outpost keys rotate-root`, its online key with `outpost keys rotate-online`.',
  },
  TRUST_KEYS_MISSING: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The folder given with --root-keys holds fewer private root keys of the current root than its threshold. Bring enough root key folders together (their files are root-<keyid>.key) and retry.',
  },
  TRUST_KEY_UNKNOWN: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No key with this keyid (or keyid prefix) is in the current root. See `outpost keys show`.',
  },
  TRUST_THRESHOLD_INVALID: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'A threshold must be an integer from 1 to the number of root keys, and revoking a root key must leave at least the threshold of keys.',
  },
  DESIRED_KEY_REVOKED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document is signed only by a key that the trusted root revoked (or retired by a rotation). It is ignored; the cloud signs with its current online key, so a document by a revoked key is stale or forged.',
  },
  // Signed imperative commands (protocol/command.ts): each refusal has its own code.
  COMMAND_UNSIGNED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A command reached the device without a signed envelope {signed, signatures}. Devices run only commands signed by the online key: send them with `outpost device command`, not with a raw MQTT publish.',
  },
  COMMAND_MALFORMED: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A signed command is not of the expected shape (type, device, command, args, nonce, issued, expires); the message names the key.',
  },
  COMMAND_BAD_SIGNATURE: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A command carries a signature from a trusted key that does not verify: it was altered after signing. It is ignored.',
  },
  COMMAND_UNTRUSTED_KEY: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: "A command is not signed by the online key of the device's trusted root. It is ignored; check which cloud sent it.",
  },
  COMMAND_KEY_REVOKED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A command is signed only by a key that the trusted root revoked or retired. It is ignored.',
  },
  COMMAND_EXPIRED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: "A command is past its expiry, issued in the future, or valid for longer than the device accepts (a captured command replayed later, or a wrong clock). Send it again; check the device's clock.",
  },
  COMMAND_REPLAYED: {
    status: 409,
    exit: EXIT.INTEGRITY,
    hint: 'A command with this nonce was already run by the device (a captured command published again). It is ignored; every command the cloud sends has a fresh nonce.',
  },
  COMMAND_WRONG_DEVICE: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A command was signed for another device, or for another command than the topic it arrived on. It is ignored.',
  },
  COMMAND_NONCE_STORE_FULL: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The device remembers the nonces of unexpired commands and holds too many of them (a flood of valid commands). Wait for them to expire (commands live at most 15 minutes) and send again.',
  },
} as const satisfies ErrorTable;
