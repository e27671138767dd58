import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of downloads on the device (HTTP Range, verification). */
export const FETCH = {
  FETCH_HASH_MISMATCH: {
    status: 502,
    exit: EXIT.INTEGRITY,
    hint: 'A downloaded file does not have the sha256 of the signed metadata (tampering or corruption on the way). The partial file was deleted; the next sync downloads it again. If it repeats, check the blob store and any proxy or mirror.',
  },
  FETCH_TOO_LONG: {
    status: 502,
    exit: EXIT.INTEGRITY,
    hint: 'The server sent (or announced) more bytes than the signed size ("endless data"). The download was stopped and deleted. Check the blob store or mirror serving this file.',
  },
  FETCH_TRUNCATED: {
    status: 502,
    exit: EXIT.INTEGRITY,
    hint: 'The server ended the file before the signed size (or announced a shorter length). The partial file was deleted. Check that the blob store holds the complete file.',
  },
  FETCH_HTTP_STATUS: {
    status: 502,
    exit: EXIT.UNAVAILABLE,
    hint: 'The blob server answered with an unexpected HTTP status (details.status) or an invalid Content-Range. 401/403: check the device token; 404: the blob is missing from the store; 5xx: retried, then reported.',
    retryable: true,
  },
  FETCH_NETWORK: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The connection to the blob server failed or was cut, and the bounded retries ran out. The partial file is kept; the next attempt resumes from its offset. Check the network and the cloud URL.',
    retryable: true,
  },
  FETCH_ABORTED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The download was cancelled (a newer desired state, shutdown, or the caller gave up). The partial file is kept so that the next attempt resumes.',
    retryable: true,
  },
  FETCH_NO_SPACE: {
    status: 507,
    exit: EXIT.FAILURE,
    hint: 'Not enough free disk space for the files to download (details.needed vs details.free, including a safety margin), or the disk filled up while writing. Free space on the models filesystem or lower the number of kept versions.',
    retryable: true,
  },
} as const satisfies ErrorTable;
