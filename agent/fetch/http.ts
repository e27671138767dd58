import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';

/** An HTTP response whose body has not been read yet. `close()` releases the socket. */
export interface OpenResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: http.IncomingMessage;
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
    const req = mod.request(u, { method: 'GET', headers, signal: opts.signal, agent: opts.agent });
    req.setTimeout(opts.idleTimeoutMs, () => req.destroy(new Error(`no data for ${opts.idleTimeoutMs} ms`)));
    req.once('error', reject);
    req.once('response', (res) => {
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: res,
        close: () => {
          // A body left unread (an error status, a refused length) must not pin the socket.
          if (!res.complete) req.destroy();
        },
      });
    });
    req.end();
  });
}
