import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventHub } from '../../agent/api/events.js';
import { runtimeEventSource, servingRuntime } from '../../agent/api/runtime-adapter.js';
import { createApiServer, type ApiServer } from '../../agent/api/server.js';
import type { ShmLimits } from '../../agent/api/shm.js';
import type { ApiLimits } from '../../agent/api/types.js';
import { AgentClient } from '../../agent/client/index.js';
import type { OnnxSettings } from '../../agent/runtime/backends/onnx-options.js';
import { BackendRegistry, defaultEntries } from '../../agent/runtime/registry.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import { silentLogger } from '../../protocol/log.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import type { FixtureKind, FixtureModel } from '../fixtures/onnx/models.js';

/**
 * A real agent API for tests: the real runtime (onnxruntime-node) serving generated models from
 * a temp dir, the real server on a Unix socket in that dir, and the real client. Nothing is
 * mocked; close() removes everything.
 */
export interface Harness {
  dir: string;
  socket: string;
  runtime: Runtime;
  server: ApiServer;
  hub: EventHub;
  client: AgentClient;
  fixtures: Record<string, FixtureModel & { dir: string }>;
  /** Writes the fixture of `kind` as `version` of acme/<kind> and activates it. */
  addVersion(kind: FixtureKind, version: number, params?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export async function startAgent(
  opts: {
    kinds?: FixtureKind[];
    limits?: Partial<ApiLimits>;
    shm?: ShmLimits;
    onnx?: Partial<OnnxSettings>;
    lane?: boolean;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-api-'));
  const registry = opts.onnx ? new BackendRegistry({ entries: defaultEntries({ onnx: opts.onnx }) }) : undefined;
  const runtime = new Runtime({ log: silentLogger, ...(registry ? { registry } : {}) });
  const hub = new EventHub();
  const unsub = runtimeEventSource(runtime).subscribe((e) => hub.publish(e));
  const serving = servingRuntime(runtime);
  const fixtures: Harness['fixtures'] = {};
  const addVersion = async (kind: FixtureKind, version: number, params?: Record<string, unknown>) => {
    const folder = join(dir, 'models', kind, String(version));
    const fx = await writeModelFolder(folder, kind, { id: `acme/${kind}`, params });
    fixtures[kind] = { ...fx, dir: folder };
    await runtime.activate(`acme/${kind}`, version, folder);
    return folder;
  };
  for (const kind of opts.kinds ?? ['classifier', 'ssd', 'yolo', 'pose', 'segmenter']) await addVersion(kind, 1);
  const server = createApiServer({
    runtime: serving,
    log: silentLogger,
    events: hub,
    limits: opts.limits,
    ...(opts.shm ? { shm: opts.shm } : {}),
    ...(opts.lane === false ? { lane: false } : {}),
    version: 'test',
  });
  const socket = join(dir, 'agent.sock');
  await server.listen(socket);
  return {
    dir,
    socket,
    runtime,
    server,
    hub,
    fixtures,
    addVersion,
    client: new AgentClient({ socket }),
    async close() {
      await server.close(1_000);
      unsub();
      serving.dispose();
      await runtime.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  json: Record<string, unknown> | undefined;
}

/**
 * Sends raw bytes on the socket and reads until the server closes, so tests can send what no
 * well-behaved client would (bad headers, lying lengths, pauses). `parts` are written in order
 * with `pauseMs` between them; `hangUp` closes our side after writing without waiting.
 */
export function raw(
  socket: string,
  parts: (string | Buffer)[],
  opts: { pauseMs?: number; hangUp?: boolean } = {},
): Promise<RawAnswer | undefined> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e),
    );
    s.on('close', () => resolve(parseAnswer(Buffer.concat(chunks))));
    s.on('connect', async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0 && opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
        if (s.destroyed) return;
        s.write(p);
      }
      if (opts.hangUp) s.destroy();
    });
  });
}

export function parseAnswer(bytes: Buffer): RawAnswer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine, ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = headers['content-length'] === undefined ? bytes.length - end - 4 : Number(headers['content-length']);
  const body = bytes.subarray(end + 4, end + 4 + len);
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body, json };
}

/** Deterministic pseudo-random floats in [0, 1) (a seeded LCG), for model inputs. */
export function randomInput(n: number, seed = 7): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}
