import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../agent/api/server.js';
import { predict } from '../../agent/cli/commands/predict.js';
import { agentStatus } from '../../agent/cli/commands/status.js';
import { AgentClient } from '../../agent/client/index.js';
import type { CliContext } from '../../protocol/cli.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { encodePng, rectsImage } from '../fixtures/images.js';
import { parseAnswer, raw, randomInput, startAgent, type Harness } from './api-harness.js';
import { capturedContext } from '../helpers/cli-context.js';

/**
 * The socket's lifecycle (mode, stale file, a live agent on the path), saturation with 503 and
 * Retry-After, and the two CLI verbs run in-process against the real agent.
 */
let h: Harness;

beforeAll(async () => {
  h = await startAgent({
    kinds: ['classifier', 'ssd'],
    limits: { maxConcurrentPerModel: 1, requestTimeoutMs: 20_000 },
  });
});
afterAll(async () => h?.close());

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('the socket file', () => {
  it('is a socket with mode 0660', async () => {
    const st = await lstat(h.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  it('refuses a path where a live agent listens, and leaves it alone', async () => {
    const other = createApiServer({
      runtime: {
        list: () => [],
        lookup: () => {
          throw new Error('x');
        },
        describe: () => undefined,
        infer: async () => {
          throw new Error('x');
        },
        predict: async () => {
          throw new Error('x');
        },
      },
      log: silentLogger,
    });
    await expect(other.listen(h.socket)).rejects.toMatchObject({ code: 'API_SOCKET_IN_USE' });
    expect(await h.client.health()).toEqual({ live: true, ready: true });
  });

  it('replaces a stale socket left by a killed process, and refuses a regular file', async () => {
    const path = join(h.dir, 'stale.sock');
    const child = spawn(
      process.execPath,
      ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => child.stdout!.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(path)).toBe(true);
    const s = createApiServer({
      runtime: {
        list: () => [],
        lookup: () => {
          throw new Error('x');
        },
        describe: () => undefined,
        infer: async () => {
          throw new Error('x');
        },
        predict: async () => {
          throw new Error('x');
        },
      },
      log: silentLogger,
    });
    await s.listen(path, 0o600);
    expect((await lstat(path)).mode & 0o777).toBe(0o600);
    expect(await new AgentClient({ socket: path }).health()).toEqual({ live: true, ready: true });
    await s.close();
    expect(existsSync(path)).toBe(false);

    const file = join(h.dir, 'not-a-socket');
    await writeFile(file, 'x');
    const t = createApiServer({
      runtime: {
        list: () => [],
        lookup: () => {
          throw new Error('x');
        },
        describe: () => undefined,
        infer: async () => {
          throw new Error('x');
        },
        predict: async () => {
          throw new Error('x');
        },
      },
      log: silentLogger,
    });
    await expect(t.listen(file)).rejects.toMatchObject({ code: 'API_SOCKET_FAILED' });
    expect(await readFile(file, 'utf8')).toBe('x');
  });

  it('the client reports an absent agent as API_UNREACHABLE', async () => {
    await expect(new AgentClient({ socket: join(h.dir, 'nobody.sock') }).health()).rejects.toMatchObject({
      code: 'API_UNREACHABLE',
    });
  });
});

describe('saturation', () => {
  it('answers 503 API_SATURATED with Retry-After while the model is at its limit, then serves again', async () => {
    // A client that sent headers and half a body holds the model's only slot.
    const holder = connect(h.socket);
    await new Promise((r) => holder.once('connect', r));
    holder.write('POST /v2/models/acme%2Fclassifier/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"inp');
    const inFlight = async () => ((await h.client.status()) as { api: { inFlight: unknown[] } }).api.inFlight.length;
    while ((await inFlight()) === 0) await tick();
    const input = { data: { dtype: 'float32' as const, shape: [1, 3, 32, 32], data: randomInput(3072) } };
    const err = await h.client.infer('acme/classifier', input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutpostError);
    expect(err).toMatchObject({ code: 'API_SATURATED' });
    const sat = await raw(h.socket, [
      `POST /v1/models/acme/classifier/predict HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    ]);
    expect(sat?.status).toBe(503);
    expect(sat?.headers['retry-after']).toBe('1');
    // Another model is not affected by this one's limit.
    await h.client.predict('acme/ssd', await encodePng(rectsImage(64, 48, [0, 0, 0], [])));
    // The holder walks away: its slot is released and the model serves again.
    holder.destroy();
    while ((await inFlight()) > 0) await tick();
    expect((await h.client.infer('acme/classifier', input)).meta.model_version).toBe('1');
  });
});

describe('close', () => {
  it('lets a request in flight finish, refuses new connections, and removes the socket', async () => {
    const body = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'data', shape: [1, 3, 32, 32], datatype: 'FP32', data: Array.from(randomInput(3072)) }],
      }),
    );
    const s = connect(h.socket);
    const chunks: Buffer[] = [];
    s.on('data', (c) => chunks.push(c));
    await new Promise((r) => s.once('connect', r));
    s.write(`POST /v2/models/acme%2Fclassifier/infer HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`);
    s.write(body.subarray(0, 100));
    const inFlight = async () => ((await h.client.status()) as { api: { inFlight: unknown[] } }).api.inFlight.length;
    while ((await inFlight()) === 0) await tick();
    const closing = h.server.close(5_000);
    await tick();
    await expect(h.client.health()).rejects.toMatchObject({ code: 'API_UNREACHABLE' });
    s.end(body.subarray(100));
    await closing;
    await new Promise((r) => (s.destroyed ? r(null) : s.once('close', r)));
    const answer = parseAnswer(Buffer.concat(chunks));
    expect(answer?.status).toBe(200);
    expect(answer?.json?.model_version).toBe('1');
    expect(existsSync(h.socket)).toBe(false);
    await h.close();
    h = await startAgent({ kinds: ['classifier', 'ssd'], limits: { maxConcurrentPerModel: 1 } });
  });
});

function cli(env: NodeJS.ProcessEnv = {}): { ctx: CliContext; out: () => string; err: () => string } {
  const ctx = capturedContext(h.dir, env);
  return { ctx, out: ctx.out, err: ctx.err };
}

describe('CLI verbs against the running agent', () => {
  it('outpost predict --json prints the typed result and --annotate writes a PNG', async () => {
    const img = join(h.dir, 'red.png');
    await writeFile(
      img,
      await encodePng(rectsImage(48, 40, [10, 10, 10], [{ box: [4, 4, 30, 30], color: [255, 0, 0] }])),
    );
    const c = cli();
    const code = await predict(
      ['red.png', '--model', 'acme/ssd', '--json', '--annotate', 'out.png', '--socket', h.socket],
      c.ctx,
    );
    expect(code).toBe(0);
    const res = JSON.parse(c.out()) as { purpose: string; predictions: { label: string }[]; annotated: string };
    expect(res.purpose).toBe('ObjectDetection');
    expect(res.predictions.map((p) => p.label)).toEqual(['red']);
    const meta = await sharp(res.annotated).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 48, 40]);

    const human = cli({ OUTPOST_SOCKET: h.socket });
    expect(await predict([img, '--model', 'acme/classifier', '--top-k', '1'], human.ctx)).toBe(0);
    expect(human.out()).toMatch(/acme\/classifier v1 \(Classification\)/);
    expect(human.out()).toMatch(/red: \d+\.\d%/);
  });

  it('outpost predict exits with the code of each failure', async () => {
    const noModel = cli();
    expect(await predict(['x.png', '--socket', h.socket], noModel.ctx)).toBe(2);
    const missing = cli();
    expect(await predict(['nope.png', '--model', 'acme/ssd', '--socket', h.socket], missing.ctx)).toBe(4);
    await writeFile(join(h.dir, 'text.png'), 'hello');
    const notImage = cli();
    expect(await predict(['text.png', '--model', 'acme/ssd', '--socket', h.socket, '--json'], notImage.ctx)).toBe(3);
    expect(JSON.parse(notImage.out()).error.code).toBe('API_NOT_AN_IMAGE');
    const unknown = cli();
    await writeFile(join(h.dir, 'ok.png'), await encodePng(rectsImage(8, 8, [0, 0, 0], [])));
    expect(await predict(['ok.png', '--model', 'acme/nope', '--socket', h.socket], unknown.ctx)).toBe(4);
    expect(unknown.err()).toMatch(/^error API_MODEL_NOT_FOUND:/);
  });

  it('outpost agent status shows the models, and exits 7 when the agent is unreachable', async () => {
    const c = cli();
    expect(await agentStatus(['--socket', h.socket], c.ctx)).toBe(0);
    expect(c.out()).toMatch(/acme\/classifier\s+v1\s+ready\s+onnx\s+Classification/);
    const j = cli();
    expect(await agentStatus(['--json', '--socket', h.socket], j.ctx)).toBe(0);
    expect((JSON.parse(j.out()) as { models: unknown[] }).models).toHaveLength(2);
    const gone = cli();
    expect(await agentStatus(['--socket', join(h.dir, 'gone.sock')], gone.ctx)).toBe(7);
    expect(gone.err()).toMatch(/API_UNREACHABLE/);
    const usage = cli();
    expect(await agentStatus(['--bogus'], usage.ctx)).toBe(2);
  });
});
