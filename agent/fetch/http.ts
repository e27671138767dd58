import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { idleTimeout } from '../net/http-answer.js';

export interface BodyHandler {
  data(chunk: Buffer): void;
  end(): void;
  error(err: unknown): void;
}

/**
 * A response body that is tapped the moment the response arrives. Why: a connection cut while
 * the caller is still preparing (opening the partial file) destroys the stream, and a Node
 * stream drops its buffered chunks and emits its events to nobody. Here nothing is lost: chunks
 * and the end or error that arrive before `start` are replayed to the handler.
 */
export interface Body {
  start(h: BodyHandler): void;
  pause(): void;
  resume(): void;
}

/** An HTTP response whose body has not been read yet. `close()` releases the socket. */
export interface OpenResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Body;
  close(): void;
}

/**
 * One GET, resolved when the status line and headers have arrived. node:http is used instead of
 * fetch() because the downloader must see the raw byte stream: a server that sends more than its
 * Content-Length, or closes early, has to surface as an error here, not be smoothed over.
 */
export function requestOnce(
  url: string,
  headers: Record<string, string>,
  opts: { signal?: AbortSignal; idleTimeoutMs: number; agent?: http.Agent | https.Agent },
): Promise<OpenResponse> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
  if (!mod) return Promise.reject(new Error(`unsupported URL scheme ${u.protocol} (use http: or https:)`));
  return new Promise((resolve, reject) => {
    const signal = opts.signal;
    if (signal?.aborted) return reject(abortError());
    const req = mod.request(u, { method: 'GET', headers, agent: opts.agent });
    let responded = false;
    // A cancel (the agent stopping) closes the connection, but not before the bytes that already
    // reached this host are read: they sit in the socket's receive buffer, and dropping them with
    // the socket means fetching them again after the restart. One turn of the event loop reads
    // them (its poll phase drains what the kernel holds); then the connection goes. Not node's
    // `signal` option, which destroys the socket at once.
    const onAbort = (): void => {
      if (responded) setImmediate(() => req.destroy(abortError()));
      else req.destroy(abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal?.removeEventListener('abort', onAbort));
    idleTimeout(req, opts.idleTimeoutMs, () => new Error(`no data for ${opts.idleTimeoutMs} ms`));
    req.once('error', reject);
    req.once('response', (res) => {
      responded = true;
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: tap(res),
        close: () => {
          // A body left unread (an error status, a refused length) must not pin the socket.
          if (!res.complete) req.destroy();
        },
      });
    });
    req.end();
  });
}

function tap(res: http.IncomingMessage): Body {
  let early: Buffer[] = [];
  let outcome: { err: unknown } | 'end' | null = null;
  let handler: BodyHandler | null = null;
  const finish = (o: { err: unknown } | 'end'): void => {
    if (outcome) return;
    outcome = o;
    if (!handler) return;
    if (o === 'end') handler.end();
    else handler.error(o.err);
  };
  res.on('data', (c: Buffer) => (handler ? handler.data(c) : early.push(c)));
  res.once('end', () => finish('end'));
  res.once('error', (err) => finish({ err }));
  res.once('close', () => finish({ err: new Error('connection closed before the end of the body') }));
  return {
    start(h) {
      handler = h;
      for (const c of early) h.data(c);
      early = [];
      if (outcome === 'end') h.end();
      else if (outcome) h.error(outcome.err);
    },
    pause: () => res.pause(),
    resume: () => res.resume(),
  };
}

function abortError(): Error {
  return Object.assign(new Error('the request was cancelled'), { name: 'AbortError', code: 'ABORT_ERR' });
}
