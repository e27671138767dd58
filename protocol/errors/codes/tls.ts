import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the cloud's MQTT/TLS and WebSocket listeners (`outpost cloud start --tls-*`). */
export const TLS = {
  CLOUD_TLS_FLAGS: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'The TLS flags of `outpost cloud start` do not fit together: --tls-cert and --tls-key must be given together, and --mqtt-tls-port and --tls-ca need them. Run `outpost cloud start --help`.',
  },
  CLOUD_TLS_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A TLS file given to `outpost cloud start` cannot be used: it is unreadable, not PEM, the key does not belong to the certificate, or --tls-ca did not issue the certificate (so provisioned devices would refuse it). The message names the file and the reason; check it with `openssl x509 -in FILE -noout -text`.',
  },
} as const satisfies ErrorTable;
