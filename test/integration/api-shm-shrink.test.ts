import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shmAddon } from '../../agent/api/shm-map.js';
import { AgentClient, SharedMemoryObject } from '../../agent/client/index.js';
import { sessionOptionsFor } from '../../agent/runtime/backends/onnx-options.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { skipForPackage } from '../helpers/requires.js';
import { randomInput } from './api-harness.js';

/**
 * Shared-memory tensors when the client misbehaves, against a real agent in its own process
 * (test/integration/shm-agent-child.ts) with real objects in /dev/shm and real onnxruntime runs,
 * on both paths: the zero-copy mapping (the outpost_shm addon and its SIGBUS guard; models on the
 * event loop read it in place, models on a worker thread copy from it) and OUTPOST_SHM=pread. A client that truncates its object, before a request or during a run of
 * the conv net, or unregisters a region in use, gets a coded refusal; the agent process lives,
 * answers ready, and serves the region again once the client resizes and registers it again.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const addon = shmAddon({});
/** mmap-worker: models placed on a worker thread, which copy their inputs out of the mapping. */
const MODES = skipForPackage(addon.ok ? null : addon.reason)
  ? (['pread'] as const)
  : (['mmap', 'mmap-worker', 'pread'] as const);

interface ModelInfo {
  id: string;
  file: string;
  shape: number[];
}
interface ChildInfo {
  socket: string;
  classifier: ModelInfo;
  conv: ModelInfo;
}

describe.each(MODES)('a client that shrinks its object (%s path)', (mode) => {
  let child: ChildProcess;
  let info: ChildInfo;
  let client: AgentClient;
  let exited: Promise<void>;
  const objects: SharedMemoryObject[] = [];
  const tag = `outpost-shrink-${mode}-${process.pid}`;
  const sessions = new Map<string, ort.InferenceSession>();

  beforeAll(async () => {
    const env = { ...process.env };
    if (mode === 'pread') env.OUTPOST_SHM = 'pread';
    else delete env.OUTPOST_SHM;
    if (mode === 'mmap-worker') env.OUTPOST_TEST_WORKERS = '1';
    else delete env.OUTPOST_TEST_WORKERS;
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/integration/shm-agent-child.ts')], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    info = await new Promise<ChildInfo>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c) => {
        out += c;
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as ChildInfo);
      });
      child.once('exit', (code, signal) => reject(new Error(`the agent child exited (${code ?? signal})`)));
    });
    client = new AgentClient({ socket: info.socket });
  }, 60_000);

  afterAll(async () => {
    client?.close();
    for (const s of sessions.values()) await s.release();
    if (child?.pid !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    for (const o of objects.splice(0)) o.destroy();
  });

  const object = (suffix: string, bytes: number) => {
    const o = SharedMemoryObject.create(`/${tag}-${suffix}`, bytes);
    objects.push(o);
    return o;
  };
  const pathOf = (o: SharedMemoryObject) => `/dev/shm${o.key}`;
  const agentMaps = (o: SharedMemoryObject) => readFileSync(`/proc/${child.pid}/maps`, 'utf8').includes(pathOf(o));

  /** The model run in this process with the agent's session options: what the agent must answer. */
  async function local(m: ModelInfo, data: Float32Array): Promise<{ input: string; output: string; out: number[] }> {
    let s = sessions.get(m.file);
    if (!s) {
      s = await ort.InferenceSession.create(
        m.file,
        sessionOptionsFor(mode === 'mmap-worker' ? { workers: 1 } : { workers: 0 }),
      );
      sessions.set(m.file, s);
    }
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', data, m.shape) });
    return {
      input: s.inputNames[0]!,
      output: s.outputNames[0]!,
      out: Array.from(r[s.outputNames[0]!]!.data as Float32Array),
    };
  }

  const byRegion = (m: ModelInfo, input: string, region: string, byteSize: number, offset = 0) => ({
    [input]: { dtype: 'float32' as const, shape: m.shape, shm: { region, offset, byteSize } },
  });

  it('answers as onnxruntime in-process does, input and output in the region', async () => {
    for (const m of [info.classifier, info.conv]) {
      const data = randomInput(
        m.shape.reduce((a, b) => a * b, 1),
        11,
      );
      const want = await local(m, data);
      const outBytes = want.out.length * 4;
      const o = object(`eq-${m.id.split('/')[1]}`, data.byteLength + outBytes);
      o.write(0, data);
      await client.registerSharedMemory('eq', o.key, data.byteLength + outBytes);
      expect(agentMaps(o)).toBe(mode !== 'pread');
      const r = await client.infer(m.id, byRegion(m, want.input, 'eq', data.byteLength), {
        outputs: [{ name: want.output, shm: { region: 'eq', offset: data.byteLength, byteSize: outBytes } }],
      });
      const got = o.readTensor(r.shmOutputs[want.output]!);
      expect(Array.from(got.data as Float32Array)).toEqual(want.out);
      // And the same input sent as bytes.
      const bin = await client.infer(
        m.id,
        { [want.input]: { dtype: 'float32', shape: m.shape, data } },
        { binary: true },
      );
      expect(Array.from(bin.outputs[want.output]!.data as Float32Array)).toEqual(want.out);
      await client.unregisterSharedMemory('eq');
      expect(agentMaps(o)).toBe(false);
    }
  });

  for (const cut of ['to 0 bytes', 'by one page'] as const) {
    it(`truncated ${cut} between register and infer: refused with the code, the agent lives, re-registering works`, async () => {
      const m = info.classifier;
      const data = randomInput(
        m.shape.reduce((a, b) => a * b, 1),
        5,
      );
      const want = await local(m, data);
      const o = object(`cut-${cut.replace(/\W/g, '')}`, data.byteLength);
      o.write(0, data);
      await client.registerSharedMemory('cut', o.key, data.byteLength);
      await truncate(pathOf(o), cut === 'to 0 bytes' ? 0 : data.byteLength - 4096);
      const input = byRegion(m, want.input, 'cut', data.byteLength);
      expect(await codeOfRejection(client.infer(m.id, input, { binary: true }))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await client.health()).toEqual({ live: true, ready: true });
      // The client restores the size and the bytes, without registering again: a mapping the guard
      // replaced stays refused (it no longer shows the object); pread reads the object anew.
      await truncate(pathOf(o), data.byteLength);
      o.write(0, data);
      if (mode !== 'pread') {
        const e = await client.infer(m.id, input, { binary: true }).catch((err: Error) => err);
        expect((e as { code?: string }).code).toBe('API_SHM_OUT_OF_RANGE');
        expect((e as Error).message).toMatch(/register the region again/);
      } else {
        const ok = await client.infer(m.id, input, { binary: true });
        expect(Array.from(ok.outputs[want.output]!.data as Float32Array)).toEqual(want.out);
      }
      await client.unregisterSharedMemory('cut');
      await client.registerSharedMemory('cut', o.key, data.byteLength);
      const again = await client.infer(m.id, input, { binary: true });
      expect(Array.from(again.outputs[want.output]!.data as Float32Array)).toEqual(want.out);
      await client.unregisterSharedMemory('cut');
    });
  }

  it('truncated and restored over and over during runs of the conv net: each answer right or refused', async () => {
    const m = info.conv;
    const data = randomInput(
      m.shape.reduce((a, b) => a * b, 1),
      9,
    );
    const want = await local(m, data);
    const outBytes = want.out.length * 4;
    const size = data.byteLength + outBytes;
    const o = object('loop', size);
    o.write(0, data);
    await client.registerSharedMemory('loop', o.key, size);
    const input = byRegion(m, want.input, 'loop', data.byteLength);
    const outputs = [{ name: want.output, shm: { region: 'loop', offset: data.byteLength, byteSize: outBytes } }];
    // Another process cuts the object (input and output) and grows it back, as fast as it can.
    // (one node process: a shell loop's last `truncate` child could outlive a kill of the shell)
    const cut = `const fs = require('node:fs'); const fd = fs.openSync(${JSON.stringify(pathOf(o))}, 'r+');
      for (;;) { fs.ftruncateSync(fd, 0); fs.ftruncateSync(fd, ${size}); }`;
    const cutter = spawn(process.execPath, ['-e', cut], { stdio: 'ignore' });
    const codes = new Map<string, number>();
    const count = (c: string) => codes.set(c, (codes.get(c) ?? 0) + 1);
    try {
      // A refused region is registered again each time (a region the guard broke stays refused
      // until then), so that every run can meet a truncation, not only the first.
      let registered = true;
      for (let i = 0; i < 40; i++) {
        if (!registered) {
          registered = await client.registerSharedMemory('loop', o.key, size).then(
            () => true,
            () => false, // the object was 0 bytes at that instant: API_SHM_OUT_OF_RANGE, try again
          );
          if (!registered) continue;
        }
        const code = await client.infer(m.id, input, { outputs }).then(
          () => 'ok',
          (e: { code?: string }) => e.code ?? String(e),
        );
        count(code);
        if (code !== 'ok') {
          await client.unregisterSharedMemory('loop');
          registered = false;
        }
      }
    } finally {
      cutter.kill('SIGKILL');
      await new Promise((r) =>
        cutter.exitCode !== null || cutter.signalCode !== null ? r(null) : cutter.once('exit', r),
      );
    }
    // A request that read a grown-back object gets its (zeroed) answer; every other is the code.
    expect([...codes.keys()].filter((c) => c !== 'ok' && c !== 'API_SHM_OUT_OF_RANGE')).toEqual([]);
    expect(await client.health()).toEqual({ live: true, ready: true });
    expect([...codes.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    await truncate(pathOf(o), size);
    o.write(0, data);
    await client.unregisterSharedMemory().catch(() => undefined);
    await client.registerSharedMemory('loop', o.key, size);
    const r = await client.infer(m.id, input, { outputs });
    expect(Array.from(o.readTensor(r.shmOutputs[want.output]!).data as Float32Array)).toEqual(want.out);
    await client.unregisterSharedMemory('loop');
  });

  it('unregistering a region while requests use it: they finish, then it is unmapped', async () => {
    const m = info.conv;
    const data = randomInput(
      m.shape.reduce((a, b) => a * b, 1),
      3,
    );
    const want = await local(m, data);
    const o = object('busy', data.byteLength);
    o.write(0, data);
    await client.registerSharedMemory('busy', o.key, data.byteLength);
    const input = byRegion(m, want.input, 'busy', data.byteLength);
    // Eight clients on their own connections keep sending until the region is gone, and the
    // unregister goes out on yet another once one answer has come back: so requests are in flight
    // around it (runs queue one after the other in the agent) whatever the scheduling.
    const clients = Array.from({ length: 8 }, () => new AgentClient({ socket: info.socket }));
    let first!: () => void;
    const answered = new Promise<void>((resolve) => (first = resolve));
    const loops = clients.map(async (c) => {
      const got: (number[] | string)[] = [];
      for (let i = 0; i < 500; i++) {
        const r = await c.infer(m.id, input, { binary: true }).then(
          (r) => Array.from(r.outputs[want.output]!.data as Float32Array),
          (e: { code?: string }) => e.code ?? String(e),
        );
        got.push(r);
        if (typeof r === 'string') break;
        first();
      }
      return got;
    });
    await answered;
    const other = new AgentClient({ socket: info.socket });
    await other.unregisterSharedMemory('busy');
    const results = (await Promise.all(loops)).flat();
    for (const c of [...clients, other]) c.close();
    // Each request either ran on the region (the right answer) or came after the unregister, and
    // every loop ended on the refusal (none ran on the region once it was gone).
    for (const r of results) {
      if (typeof r === 'string') expect(r).toBe('API_SHM_REGION_UNKNOWN');
      else expect(r).toEqual(want.out);
    }
    expect(results.some((r) => typeof r !== 'string')).toBe(true);
    expect(results.filter((r) => typeof r === 'string')).toHaveLength(clients.length);
    expect(await client.sharedMemoryStatus()).toEqual([]);
    expect(agentMaps(o)).toBe(false);
    expect(await client.health()).toEqual({ live: true, ready: true });
  });
});
