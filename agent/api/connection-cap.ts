import type { Socket } from 'node:net';
import { OutpostError } from '../../protocol/errors/index.js';
import { errorBody } from './http.js';

/**
 * The socket's connection cap (api.maxConnections). A connection over it gets one complete
 * HTTP answer, 503 API_TOO_MANY_CONNECTIONS with Retry-After, and is closed before anything of
 * it is read: a client sees a coded error instead of a reset, and no read buffer is allocated
 * for it. Both servers (the fast lane and node:http alone) call this at accept.
 */
export function refuseOverCap(socket: Socket, open: number, max: number): boolean {
  if (open < max) return false;
  const e = new OutpostError(
    'API_TOO_MANY_CONNECTIONS',
    `the socket already has ${open} open connections (api.maxConnections is ${max}); close idle connections or retry after 1 s`,
    { open, limit: max, retryAfterSeconds: 1 },
  );
  const body = JSON.stringify(errorBody(e));
  socket.on('error', () => {});
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
  );
  // A client that never reads must not keep the refused socket open.
  setTimeout(() => socket.destroy(), 1_000).unref();
  return true;
}
