import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of the real cloud that forwards everything except the root documents
 * it was told to replace: what a compromised mirror, a DNS hijack or a hostile network path
 * would serve a device. `requests` logs the root versions asked for.
 */
export interface HostileProxy {
  url: string;
  /** Root version -> bytes served instead of the cloud's answer. */
  roots: Map<number, Buffer>;
  requests: number[];
  close(): Promise<void>;
}

export async function startHostileProxy(target: string): Promise<HostileProxy> {
  const roots = new Map<number, Buffer>();
  const requests: number[] = [];
  const up = new URL(target);
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/trust\/root\/(\d+)\.json$/.exec(req.url ?? '');
    if (m) requests.push(Number(m[1]));
    const fake = m ? roots.get(Number(m[1])) : undefined;
    if (fake) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': fake.length });
      res.end(fake);
      return;
    }
    const fwd = http.request(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: up.host },
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    roots,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
