import type { Socket } from 'node:net';
import { OutpostError } from '../../protocol/errors/index.js';
import { errorBody } from './http.js';
import { writeAnswer } from './lane/answer.js';

/**
 * The socket's connection cap (api.maxConnections). A connection over it gets one complete
 * HTTP answer, 503 API_TOO_MANY_CONNECTIONS with Retry-After, and is closed before anything of
 * it is read: a client sees a coded error instead of a reset, and no read buffer is allocated
 * for it. Both servers (the fast lane and node:http alone) call this at accept; the refusal is
 * returned so the caller counts it with the socket's other refusals.
 */
export function refuseOverCap(socket: Socket, open: number, max: number): OutpostError | undefined {
  if (open < max) return undefined;
  const e = new OutpostError(
    'API_TOO_MANY_CONNECTIONS',
    `the socket already has ${open} open connections (api.maxConnections is ${max}); close idle connections or retry after 1 s`,
    { open, limit: max, retryAfterSeconds: 1 },
  );
  const body = Buffer.from(JSON.stringify(errorBody(e)));
  socket.on('error', () => {});
  const headers = { 'Content-Type': 'application/json', 'Retry-After': '1' };
  writeAnswer(
    socket,
    { status: e.status, headers, parts: [body], byteLength: body.length },
    { close: true, keepAliveMs: 0 },
    () => {},
  );
  socket.end();
  // A client that never reads must not keep the refused socket open.
  setTimeout(() => socket.destroy(), 1_000).unref();
  return e;
}
