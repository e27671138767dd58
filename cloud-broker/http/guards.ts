import type http from 'node:http';
import type { Socket } from 'node:net';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import type { CloudLimits } from '../limits.js';
import { sendJson } from './respond.js';

/**
 * The HTTP server's bounds on slow and numerous clients (docs/security.md, "Bounded abuse"):
 *
 * - headersTimeout / requestTimeout: Node's own, checked every second.
 * - A body rate floor: a body must bring `bodyMinBytes` per `bodyWindowMs`. A plain idle timeout
 *   would never cut a client that sends one byte a second (500 of those held the server before),
 *   and a total-time limit would cut an honest 20 GiB upload; a rate floor does neither.
 * - An idle timeout for connections with no traffic at all.
 * - `maxConnections`, counted here so that the refused one gets an answer with a code
 *   (Node's own server.maxConnections drops it without a word).
 * - Malformed HTTP (Node's parser) is answered with a coded JSON 400/408/431 where the socket can
 *   still take it.
 */
export function guardServer(server: http.Server, limits: CloudLimits['http'], log: Logger): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.setTimeout(limits.idleTimeoutMs);
  let open = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= limits.maxConnections) {
      log.warn(
        { open, limit: limits.maxConnections, source: socket.remoteAddress },
        'refused connection: at the limit',
      );
      writeRaw(
        socket,
        new OutpostError(
          'HTTP_TOO_MANY_CONNECTIONS',
          `the cloud holds its maximum of ${limits.maxConnections} connections; retry after 1 s`,
          { limit: limits.maxConnections },
        ),
        { 'Retry-After': '1' },
      );
      return;
    }
    open++;
    socket.once('close', () => open--);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) return void socket.destroy();
    // A response already under way cannot be replaced: cut the connection instead.
    if ((socket as Socket & { _httpMessage?: http.ServerResponse })._httpMessage?.headersSent)
      return void socket.destroy();
    const e =
      code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new OutpostError(
            'HTTP_REQUEST_TIMEOUT',
            `the request was not received in time (headers within ${limits.headersTimeoutMs} ms, all of it within ${limits.requestTimeoutMs} ms)`,
          )
        : code === 'HPE_HEADER_OVERFLOW'
          ? new OutpostError('HTTP_HEADERS_TOO_LARGE', 'the request headers are too large')
          : new OutpostError('HTTP_BAD_REQUEST_SYNTAX', `the request is not valid HTTP/1.1 (${code || err.message})`, {
              parser: code,
            });
    log.debug({ code, source: socket.remoteAddress }, 'malformed request');
    writeRaw(socket, e);
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => watchBodyRate(req, res, limits, log));
}

/** Cuts a request whose body brings fewer than bodyMinBytes per window; answers 408 if it still can. */
function watchBodyRate(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  limits: CloudLimits['http'],
  log: Logger,
): void {
  if (req.complete || limits.bodyWindowMs === 0) return;
  // Bytes are counted on the socket, not with a 'data' listener: that would switch the body to
  // flowing mode and lose it while the handler is still deciding (quota, free space).
  let mark = req.socket.bytesRead;
  const timer = setInterval(() => {
    if (req.complete || req.destroyed) return void clearInterval(timer);
    // A handler that stopped reading on purpose (it already answered) is not the client's fault.
    if (res.headersSent) return;
    const received = req.socket.bytesRead - mark;
    mark = req.socket.bytesRead;
    // The kernel buffer fills when the handler does not read (backpressure): not the client's fault.
    if (received >= limits.bodyMinBytes || req.readableLength > 0 || req.isPaused()) return;
    clearInterval(timer);
    log.warn({ source: req.socket.remoteAddress, url: req.url?.slice(0, 200), received }, 'cut a slow request body');
    const e = new OutpostError(
      'HTTP_BODY_TOO_SLOW',
      `the request body brought ${received} bytes in ${limits.bodyWindowMs} ms; at least ${limits.bodyMinBytes} are needed`,
      { received, windowMs: limits.bodyWindowMs, minBytes: limits.bodyMinBytes },
    );
    if (res.headersSent) return void req.socket.destroy();
    // The handler is still waiting for the body; the answer goes out through its response, so
    // its own late error answer finds headers sent and only closes.
    res.setHeader('Connection', 'close');
    sendJson(res, e.status, e.toJSON());
    res.once('finish', () => req.socket.destroy());
  }, limits.bodyWindowMs);
  timer.unref();
  req.once('end', () => clearInterval(timer));
  req.once('close', () => clearInterval(timer));
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

/** Writes a whole JSON error answer on a raw socket and closes it (the HTTP layer is not usable). */
function writeRaw(socket: Socket, e: OutpostError, extra: Record<string, string> = {}): void {
  const body = JSON.stringify(e.toJSON());
  const head = [
    `HTTP/1.1 ${e.status} ${REASONS[e.status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  // A client that never reads must not keep the socket: end() waits for the peer's FIN.
  setTimeout(() => socket.destroy(), 5_000).unref();
}
