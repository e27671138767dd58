import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { authenticate, type Principal } from '../auth/index.js';
import { fingerprint, type FailureLimiter } from '../auth/failure-limiter.js';
import type { Db } from '../db/open.js';

/** The bearer token of a request, if it has the Bearer form (never logged; only fingerprinted). */
function bearer(header: string | undefined): string | undefined {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

/**
 * authenticate() behind the failed-authentication limiter (cloud-broker/auth/failure-limiter.ts).
 * A source or token over its limit gets 429 AUTH_RATE_LIMITED with Retry-After before its token
 * is checked; a failure is counted, and the moment a key becomes blocked one warn line names the
 * address and the token's fingerprint (never the token).
 */
export function authenticateLimited(limiter: FailureLimiter, db: Db, req: IncomingMessage, log: Logger): Principal {
  const source = req.socket.remoteAddress ?? 'unknown';
  const token = bearer(req.headers.authorization);
  const blocked = limiter.check(source, token);
  if (blocked) {
    throw new OutpostError(
      'AUTH_RATE_LIMITED',
      `too many failed authentications from this ${blocked.by === 'source' ? 'address' : 'token'}; retry after ${blocked.retryAfterSeconds} s`,
      { by: blocked.by, retryAfterSeconds: blocked.retryAfterSeconds },
    );
  }
  try {
    return authenticate(db, req.headers.authorization);
  } catch (err) {
    const tripped = limiter.fail(source, token);
    if (tripped.source || tripped.credential) {
      log.warn(
        {
          source,
          tokenFingerprint: token === undefined ? null : fingerprint(token),
          by: tripped.source ? 'source' : 'credential',
          limits: limiter.limits,
        },
        'failed authentications over the limit; refusing this address/token until the window ends',
      );
    }
    throw err;
  }
}
