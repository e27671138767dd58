import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OutpostError } from '../../protocol/errors/index.js';

// After an early error answer, read at most this much of an unread upload so the client sees
// the answer (closing with unread bytes makes the kernel send a reset that can eat it).
const DRAIN_LIMIT = 64 * 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** Answers `{code, message, details?}` with the code's status; closes the connection if the request body was not read. */
export function sendError(req: IncomingMessage, res: ServerResponse, err: OutpostError): void {
  if (!req.complete) {
    res.setHeader('Connection', 'close');
    let drained = 0;
    req.on('data', (c: Buffer) => {
      drained += c.length;
      if (drained > DRAIN_LIMIT) req.socket.destroy();
    });
    req.resume();
  }
  if (req.method === 'HEAD') {
    res.statusCode = err.status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end();
    return;
  }
  sendJson(res, err.status, err.toJSON());
}
