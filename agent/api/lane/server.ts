import { createServer, Socket, type Server } from 'node:net';
import { LaneConnection, type LaneHost } from './connection.js';
import { refuseOverCap } from '../connection-cap.js';
import { Handoff } from './handoff.js';

/**
 * The fast lane: the agent's Unix socket is a net.Server whose connections parse HTTP/1.1 heads
 * themselves (agent/api/lane/parse.ts), serve the hot route (KServe infer) from pooled body
 * buffers, and hand every other request to the node:http server, which no longer listens
 * itself (docs/local-api.md, "The fast lane"; docs/performance.md, round 5).
 *
 * Why not node:http for everything: its parser copies every body read into a new Buffer
 * before JavaScript sees it, and those 64 KiB allocations were most of the agent's CPU per
 * 588 KiB request (the GC they start). Here reads go into one buffer per connection, and a
 * body straight into the buffer its tensors are views of.
 *
 * Reads without allocation need net.Socket's `onread` option, which Node 20 offers only to
 * sockets constructed in JavaScript, not to the ones net.Server accepts. The server therefore
 * accepts with `pauseOnConnect` (nothing is read yet), takes the accepted socket's handle and
 * wraps it in a new net.Socket with `onread`, as Node's own constructor does for a `handle`
 * option; the accepted wrapper is destroyed without its handle. `laneSupported()` checks that
 * the handle is what this needs; where it is not (another Node), the agent serves node:http
 * directly, as before the lane.
 */
export interface Lane {
  readonly server: Server;
  readonly size: number;
  /** Closes connections that wait for a request (keep-alive idle). */
  closeIdle(): void;
  destroyAll(): void;
}

interface HandleCarrier {
  _handle: { useUserBuffer?: unknown; readStop?: unknown } | null;
}

/** Whether this Node lets the lane adopt accepted handles (see above). */
export function laneSupported(): boolean {
  const d = Object.getOwnPropertyDescriptor(Socket.prototype, '_handle');
  return d !== undefined && typeof d.set === 'function' && typeof d.get === 'function';
}

export function createLane(host: LaneHost, timeoutCheckMs: number): Lane {
  const connections = new Map<LaneConnection, Socket>();
  // Requests handed over on a Handoff get their answer tied back to the lane connection.
  host.http.prependListener('request', (req, res) => {
    if (req.socket instanceof Handoff) req.socket.sink.response(res);
  });
  // node:http sets up its connection list (and the request/headers timeouts on it) on
  // 'listening'; it has no socket of its own now, its connections are the lanes' Handoffs.
  host.http.emit('listening');
  let sweep: NodeJS.Timeout | undefined;

  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted: Socket) => {
    const over = refuseOverCap(accepted, connections.size, host.limits.maxConnections);
    if (over) return void host.refused(over);
    const handle = (accepted as unknown as HandleCarrier)._handle;
    if (!handle || typeof handle.useUserBuffer !== 'function') return void accepted.destroy();
    (accepted as unknown as HandleCarrier)._handle = null;
    accepted.destroy();
    const conn = new LaneConnection(host);
    // `handle` is what net.Server itself passes for an accepted socket; it and `onread` are
    // missing from @types/node's constructor options (onread is typed for connect() only).
    const options = {
      handle,
      readable: true,
      writable: true,
      allowHalfOpen: true,
      onread: { buffer: () => conn.target(), callback: (n: number, buf: Uint8Array) => conn.onRead(n, buf) },
    };
    const socket = new Socket(options as ConstructorParameters<typeof Socket>[0]);
    conn.socket = socket;
    connections.set(conn, socket);
    socket.on('error', () => {});
    socket.on('end', () => conn.onEnd());
    socket.on('close', () => {
      connections.delete(conn);
      conn.onClose();
    });
  });
  server.on('listening', () => {
    sweep = setInterval(() => {
      const now = Date.now();
      for (const c of connections.keys()) c.expire(now);
    }, timeoutCheckMs).unref();
  });
  server.on('close', () => clearInterval(sweep));

  return {
    server,
    get size() {
      return connections.size;
    },
    closeIdle() {
      for (const [c, s] of connections) if (c.idleNow()) s.destroy();
    },
    destroyAll() {
      for (const s of connections.values()) s.destroy();
    },
  };
}
