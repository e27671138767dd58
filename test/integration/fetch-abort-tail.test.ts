import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadVerified } from '../../agent/fetch/index.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { waitFor } from '../helpers/fleet.js';

/**
 * A stop (the agent's SIGTERM) in the middle of a download. Two places hold bytes that reached
 * the device but are not on disk yet:
 * - the write batch: network chunks are collected and written 256 KiB at a time, so up to a batch
 *   has been read without being written;
 * - the socket's receive buffer: bytes the kernel holds that the process has not read yet (on a
 *   busy machine the event loop reads late, and a stop lands between two reads).
 * The claim: everything in both is in the partial file when the cancelled download returns, so
 * the resume asks for exactly the rest. Deterministic: the server sends known byte counts (less
 * than a batch, not a multiple of a network read) and holds the connection; the test observes the
 * client's socket (bytesRead), and for the second part aborts in the same turn as the server's
 * write, before the client's event loop could have read it.
 */
const SIZE = 1024 * 1024;
const SENT = 100_000 + 321;
const MORE = 50_000 + 17;

let dir: string;
let blob: Buffer;
let sha: string;
let server: net.Server;
let url: string;
const conns = new Set<net.Socket>();
/** The server side of the first (unranged) connection, to send more on it. */
let first: net.Socket | null = null;
const ranges: (string | undefined)[] = [];
const head = (status: number, length: number, extra = ''): string =>
  `HTTP/1.1 ${status} X\r\ncontent-type: application/octet-stream\r\ncontent-length: ${length}\r\n${extra}connection: close\r\n\r\n`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-tail-'));
  blob = randomBytes(SIZE);
  sha = createHash('sha256').update(blob).digest('hex');
  // A raw server, so that the exact bytes on the wire (headers included) are known.
  server = net.createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      const range = /\r\nrange: bytes=(\d+)-\r\n/i.exec(buf);
      ranges.push(range ? `bytes=${range[1]}-` : undefined);
      if (range) {
        const from = Number(range[1]);
        sock.end(
          Buffer.concat([
            Buffer.from(head(206, SIZE - from, `content-range: bytes ${from}-${SIZE - 1}/${SIZE}\r\n`), 'latin1'),
            blob.subarray(from),
          ]),
        );
      } else {
        // The first SENT bytes, then silence with the connection open (a slow uplink).
        first = sock;
        sock.write(Buffer.concat([Buffer.from(head(200, SIZE), 'latin1'), blob.subarray(0, SENT)]));
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/v1/blobs/${sha}`;
});
afterAll(async () => {
  for (const c of conns) c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

/** An http.Agent whose sockets the test can watch: bytesRead counts what the process has read. */
function watchedAgent(): { agent: http.Agent; socket: () => net.Socket | null } {
  let socket: net.Socket | null = null;
  const agent = new http.Agent({ keepAlive: false });
  const create = agent.createConnection.bind(agent) as unknown as (...a: unknown[]) => net.Socket;
  (agent as unknown as { createConnection: (...a: unknown[]) => net.Socket }).createConnection = (...a) => {
    socket = create(...a);
    return socket;
  };
  return { agent, socket: () => socket };
}

describe('a download stopped mid-batch', () => {
  it('keeps every byte that reached the host, read or not, and the resume asks for exactly the rest', async () => {
    const dest = join(dir, sha);
    const { agent, socket } = watchedAgent();
    const headBytes = Buffer.byteLength(head(200, SIZE), 'latin1');
    const ac = new AbortController();
    const parked = downloadVerified({ url, sha256: sha, size: SIZE, dest, signal: ac.signal, agent, backoffMs: 1 });
    // Node parses a read at once: once the socket has read them, the downloader has them (in its batch).
    await waitFor('the first bytes read', () => socket()?.bytesRead === headBytes + SENT, 10_000);
    // More bytes, handed to the kernel by this write (loopback delivers them into the client's
    // receive buffer within the call), and the cancel in the same turn: the client has not read them.
    first!.write(blob.subarray(SENT, SENT + MORE));
    ac.abort();
    expect(socket()?.bytesRead).toBe(headBytes + SENT);
    expect(await codeOfRejection(parked)).toBe('FETCH_ABORTED');
    expect((await stat(`${dest}.part`)).size).toBe(SENT + MORE);
    expect((await readFile(`${dest}.part`)).equals(blob.subarray(0, SENT + MORE))).toBe(true);

    const r = await downloadVerified({ url, sha256: sha, size: SIZE, dest, backoffMs: 1 });
    expect(r).toEqual({ bytesFetched: SIZE - SENT - MORE, resumed: true });
    expect(ranges).toEqual([undefined, `bytes=${SENT + MORE}-`]);
    expect((await readFile(dest)).equals(blob)).toBe(true);
    agent.destroy();
  });
});
