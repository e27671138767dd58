import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/**
 * Codes of the external-broker path with Mosquitto's dynamic-security plugin
 * (`outpost cloud start --broker mqtt://... --broker-admin dynsec`, docs/scale.md).
 */
export const DYNSEC = {
  CLOUD_BROKER_FLAGS: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The external-broker flags of `outpost cloud start` do not fit: --broker takes mqtt://USER:PASSWORD@HOST:PORT (or mqtts://) with the credentials of a dynamic-security admin, and --broker-admin (dynsec or none) and --broker-ca need --broker. Run `outpost cloud start --help`.',
  },
  DYNSEC_TIMEOUT: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'Mosquitto did not answer a $CONTROL/dynamic-security command in time. Check that mosquitto.conf loads mosquitto_dynamic_security.so (plugin + plugin_opt_config_file) and that the --broker user has the dynsec admin role (`mosquitto_ctrl dynsec init` makes one); a user without it is silently refused.',
    retryable: true,
  },
  DYNSEC_DISCONNECTED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The connection to the broker dropped while a dynamic-security command was waiting for its answer. The cloud reconnects and reconciles the broker with the database; retry the command.',
    retryable: true,
  },
  DYNSEC_BUSY: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'Too many dynamic-security commands are waiting for the broker at once (the bound keeps a slow broker from piling up work). Retry in a moment.',
    retryable: true,
  },
  DYNSEC_REFUSED: {
    status: 502,
    exit: EXIT.FAILURE,
    hint: 'The dynamic-security plugin answered a command with an error (the message quotes it). A refusal that names a role or a client means the broker was changed by hand; restarting the cloud reconciles it.',
  },
  DYNSEC_CREDENTIAL_UNRECOVERABLE: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'A device is missing from the broker and its MQTT password cannot be recomputed (it was provisioned before --broker-admin dynsec, or <data dir>/broker/device-credentials.key changed). Re-issue its credentials: `outpost device remove ID` then `outpost device provision ID`.',
  },
} as const satisfies ErrorTable;
