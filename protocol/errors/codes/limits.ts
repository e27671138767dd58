import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the abuse bounds: rate limits, timeouts, quotas, bytes in flight (docs/security.md). */
export const LIMITS = {
  AUTH_RATE_LIMITED: {
    status: 429,
    exit: EXIT.AUTH,
    hint: 'Too many failed authentications from this address or with this credential in a short time. Fix the token (it is wrong or revoked), then retry after the Retry-After seconds; the limits are cloud settings (docs/configuration.md, "Cloud limits").',
  },
  HTTP_BODY_TOO_SLOW: {
    status: 408,
    exit: EXIT.UNAVAILABLE,
    hint: 'The request body arrived slower than the cloud accepts (fewer than http.bodyMinBytes bytes in http.bodyWindowMs). Check the network, then send the request again.',
  },
  HTTP_REQUEST_TIMEOUT: {
    status: 408,
    exit: EXIT.UNAVAILABLE,
    hint: 'The request (headers, or headers and body) was not received in time (http.headersTimeoutMs / http.requestTimeoutMs). Check the network, then send it again.',
  },
  HTTP_TOO_MANY_CONNECTIONS: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The cloud holds its maximum of open connections (http.maxConnections). Retry after the Retry-After seconds; an operator may raise the limit.',
  },
  HTTP_BAD_REQUEST_SYNTAX: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request is not valid HTTP/1.1 (request line, header or chunked framing); the connection is closed. Use an HTTP client library.',
  },
  HTTP_HEADERS_TOO_LARGE: {
    status: 431,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request headers are larger than the server accepts (16 KiB, Node.js default). Send shorter headers.',
  },
  BLOB_QUOTA_EXCEEDED: {
    status: 413,
    exit: EXIT.CONFLICT,
    hint: 'You hold too many uploaded blobs (count or bytes) that no published version lists. Publish the versions that use them, or ask the admin to raise uploads.maxUnreferencedCount / uploads.maxUnreferencedBytes.',
  },
  BLOB_NO_SPACE: {
    status: 507,
    exit: EXIT.UNAVAILABLE,
    hint: "The cloud's blob filesystem does not have room for the declared upload plus its reserve (uploads.minFreeBytes). Nothing was stored; an operator must free space.",
  },
  API_MEMORY_BUSY: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The agent already holds its maximum of decoded image and tensor bytes for requests in flight (api.maxBytesInFlight). Retry after the Retry-After seconds, or send smaller images; one larger than the whole budget is refused with API_IMAGE_TOO_LARGE.',
  },
  API_IMAGE_TOO_LARGE: {
    status: 413,
    exit: EXIT.INVALID_INPUT,
    hint: "The image or tensor would need more decoded bytes than the agent's whole in-flight budget (api.maxBytesInFlight). Resize it before sending.",
  },
} as const satisfies ErrorTable;
