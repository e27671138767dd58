import net from 'node:net';

/**
 * HTTP/1.1 over a raw TCP or Unix socket, for tests that must send what no HTTP client sends:
 * malformed request lines, partial headers, a body dripped one byte at a time, many idle
 * connections. `answer()` resolves with the first whole response, or what the server wrote
 * before it closed, or after `timeoutMs` what came so far (`closed` says whether it closed).
 */
export interface RawConnection {
  socket: net.Socket;
  write(data: string | Buffer): void;
  answer(timeoutMs?: number): Promise<RawAnswer>;
  close(): void;
}

export interface RawAnswer {
  /** Everything received, as text. */
  text: string;
  /** Status code of the first response, or null when nothing parseable came. */
  status: number | null;
  /** The JSON body's `code`, when the body is an Outpost error. */
  code: string | null;
  headers: Record<string, string>;
  closed: boolean;
}

export function parseRawAnswer(text: string, closed: boolean): RawAnswer {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  const headers: Record<string, string> = {};
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  // The first response's body only: a server may answer a second time (a parse error after it
  // already answered) on the same connection.
  const len = Number(headers['content-length']);
  const rest = split < 0 ? '' : text.slice(split + 4);
  const body = Number.isFinite(len) ? rest.slice(0, len) : rest;
  let code: string | null = null;
  try {
    code = (JSON.parse(body) as { code?: string }).code ?? null;
  } catch {
    // not JSON (or not all of it)
  }
  return { text, status: m ? Number(m[1]) : null, code, headers, closed };
}

export function rawConnect(
  target: { port: number; host?: string; localAddress?: string } | string,
): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket =
      typeof target === 'string'
        ? net.connect(target)
        : net.connect({ port: target.port, host: target.host ?? '127.0.0.1', localAddress: target.localAddress });
    const chunks: Buffer[] = [];
    let closed = false;
    const waiters: (() => void)[] = [];
    // A whole response (headers and a Content-Length body) also ends the wait: keep-alive
    // connections stay open after it.
    const complete = (): boolean => {
      const a = parseRawAnswer(Buffer.concat(chunks).toString('latin1'), false);
      const len = Number(a.headers['content-length']);
      const split = a.text.indexOf('\r\n\r\n');
      return a.status !== null && split >= 0 && Number.isFinite(len) && a.text.length - split - 4 >= len;
    };
    socket.on('data', (c) => {
      chunks.push(c);
      if (complete()) for (const w of waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      for (const w of waiters.splice(0)) w();
    });
    socket.once('connect', () =>
      resolve({
        socket,
        write: (data) => {
          if (!socket.destroyed) socket.write(data);
        },
        answer: (timeoutMs = 10_000) =>
          new Promise<RawAnswer>((done) => {
            const finish = (): void => done(parseRawAnswer(Buffer.concat(chunks).toString('latin1'), closed));
            if (closed || complete()) return finish();
            const t = setTimeout(finish, timeoutMs);
            waiters.push(() => {
              clearTimeout(t);
              finish();
            });
          }),
        close: () => socket.destroy(),
      }),
    );
    socket.once('error', reject);
  });
}
