import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';

/** An answer of the fast lane: the status, headers, and the body as parts never joined. */
export interface LaneAnswer {
  status: number;
  headers: Record<string, string>;
  parts: readonly Uint8Array[];
  byteLength: number;
  /** Close the connection after this answer (an unread body that must not be parsed). */
  close?: boolean;
}

let dateSecond = 0;
let dateHeader = '';

/** The Date header, formatted at most once a second (node:http does the same). */
function date(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateHeader = new Date(now).toUTCString();
  }
  return dateHeader;
}

/**
 * Writes the status line, the headers and every part in one writev (cork, write each, uncork):
 * the parts are tensors' own memory, so nothing is copied into a joined body. `done` runs once
 * the socket has taken the last byte, or at once when the socket is gone; the caller releases
 * the parts' memory then.
 */
export function writeAnswer(
  socket: Socket,
  a: LaneAnswer,
  opts: { close: boolean; keepAliveMs: number },
  done: () => void,
): void {
  if (socket.destroyed || !socket.writable) {
    done();
    return;
  }
  let head = `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? 'Unknown'}\r\nDate: ${date()}\r\n`;
  for (const [k, v] of Object.entries(a.headers)) head += `${k}: ${v}\r\n`;
  head += `Content-Length: ${a.byteLength}\r\n`;
  head += opts.close
    ? 'Connection: close\r\n\r\n'
    : `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.round(opts.keepAliveMs / 1000)}\r\n\r\n`;
  let called = false;
  const finish = () => {
    if (called) return;
    called = true;
    socket.off('close', finish);
    done();
  };
  socket.once('close', finish);
  socket.cork();
  const last = a.parts.length - 1;
  socket.write(head, 'latin1', last < 0 ? finish : undefined);
  for (let i = 0; i <= last; i++) socket.write(a.parts[i]!, i === last ? finish : undefined);
  socket.uncork();
}
