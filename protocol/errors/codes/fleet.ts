import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of devices, deployments, signing, the broker and the desired-state protocol. */
export const FLEET = {
  // Desired-state verification on the device (protocol/desired-state.ts). Each TUF attack has its own code.
  DESIRED_MALFORMED: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A desired-state document is not valid JSON of the expected shape; the message names the key. The document is ignored and the current models keep serving. Check the cloud that published it.',
  },
  DESIRED_BAD_SIGNATURE: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document carries a signature from a trusted key that does not verify: the document was altered after signing. It is ignored; investigate what sits between the cloud and the device.',
  },
  DESIRED_UNTRUSTED_KEY: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: "A desired-state document is not signed by any key in the device's trustedKeys (agent.json). Re-provision the device with the cloud's current public key, or check which cloud published it.",
  },
  DESIRED_ROLLBACK: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document has a lower revision than one the device already applied (a replayed old document: rollback attack). It is ignored. Roll back models with `outpost rollback`, which publishes a new, higher revision.',
  },
  DESIRED_EXPIRED: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document is past its `expires` time (freeze attack, or a cloud that stopped re-signing). The device keeps its current models; the cloud re-signs documents before they expire, so check that it is running and the device clock is right.',
  },
  DESIRED_WRONG_DEVICE: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document was signed for another device id. It is ignored; check the broker ACL and the device id in agent.json.',
  },
  DESIRED_UNSAFE_PATH: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A desired-state document lists a file path that is absolute or contains `..`, `.`, a backslash or an empty segment. It is refused so that nothing is written outside the model folder.',
  },
  CANONICAL_JSON_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A value cannot be signed as canonical JSON (only objects, arrays, strings, safe integers, booleans and null are allowed; no fractions). The message names the path of the value.',
  },
  TRUSTED_KEY_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A trusted key is not an ed25519 public key in PEM form, or its keyid is not the sha256 of its DER (SPKI) bytes. Copy trustedKeys again from `outpost device provision` output.',
  },
  REPORTED_MALFORMED: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A reported-state document from a device is not of the expected shape; the message names the key. The cloud keeps the previous report of that device.',
  },
  // Cloud side: devices, deployments, signing keys, broker.
  DEVICE_ID_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A device id must be 1-64 characters of letters, digits, `.`, `_` and `-`, starting with a letter or digit (it becomes an MQTT topic level and a username).',
  },
  DEVICE_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No device with this id is registered. List devices with `outpost device list`.',
  },
  DEVICE_EXISTS: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'A device with this id is already provisioned. Remove it first (`outpost device remove <id>`) to issue new credentials.',
  },
  TAG_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A tag must be 1-64 characters of letters, digits, `.`, `_`, `:` and `-`.',
  },
  DEPLOY_TARGET_INVALID: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'A deployment needs exactly one target: --device <id>, --tag <tag> or --all.',
  },
  DEPLOY_VERSION_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The model version (or the app) to deploy is not in the catalog. Publish it first, or check `outpost model versions <id>`.',
  },
  ROLLBACK_NO_PREVIOUS: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'There is no earlier deployment of this model for exactly this target (--device, --tag or --all as deployed) to go back to. Deploy the version you want with `outpost deploy <owner/name>@<version>` instead.',
  },
  SIGNING_KEY_INVALID: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: "The cloud's signing key (in the database's cluster_secrets, or a key file of an old data dir being imported) is unreadable or not an ed25519 key; the message names it. Restore it from backup; replacing it means re-provisioning every device with the new public key.",
  },
  BROKER_LISTEN_FAILED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The MQTT broker could not listen on the given host/port (port in use, no permission, bad TLS certificate or key). The message names the listener.',
    retryable: true,
  },
  BROKER_UNREACHABLE: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud could not reach or authenticate to the MQTT broker to publish desired states. Check the broker URL and the service credentials.',
    retryable: true,
  },
} as const satisfies ErrorTable;
