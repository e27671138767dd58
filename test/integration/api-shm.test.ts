import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedMemoryObject } from '../../agent/client/index.js';
import type { WireTensor } from '../../protocol/kserve.js';
import { shmAddon } from '../../agent/api/shm-map.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { skipForPackage } from '../helpers/requires.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * The system shared-memory extension against a real agent, with real objects in /dev/shm, on
 * both paths (the zero-copy mapping of the outpost_shm addon, and OUTPOST_SHM=pread):
 * Triton's routes and JSON shapes, inputs and outputs by region (JSON and binary-framed
 * requests) equal to the runtime run in-process, and every unsafe key, range or state refused
 * with its code while the agent keeps serving.
 */
let h: Harness;
const tag = `outpost-test-${process.pid}-${Date.now().toString(36)}`;
const objects: SharedMemoryObject[] = [];
const extra: string[] = [];
let scratch: string;

function object(suffix: string, bytes: number): SharedMemoryObject {
  const o = SharedMemoryObject.create(`/${tag}-${suffix}`, bytes);
  objects.push(o);
  return o;
}

// The zero-copy path needs the outpost_shm addon (libc only: CI always builds it).
const addon = shmAddon({});
const MODES = skipForPackage(addon.ok ? null : addon.reason) ? (['pread'] as const) : (['mmap', 'pread'] as const);

describe.each(MODES)('the %s path', (mode) => {
  beforeAll(async () => {
    // The path is chosen when the registry is made (agent/api/shm-map.ts reads OUTPOST_SHM then).
    const before = process.env.OUTPOST_SHM;
    if (mode === 'pread') process.env.OUTPOST_SHM = 'pread';
    else delete process.env.OUTPOST_SHM;
    try {
      h = await startAgent({ kinds: ['classifier'], shm: { maxRegions: 4, maxRegisteredBytes: 64 * 1024 * 1024 } });
    } finally {
      if (before === undefined) delete process.env.OUTPOST_SHM;
      else process.env.OUTPOST_SHM = before;
    }
    scratch = await mkdtemp(join(tmpdir(), 'outpost-shm-'));
  });
  afterAll(async () => {
    await h?.close();
    for (const o of objects.splice(0)) o.destroy();
    for (const p of extra) await unlink(p).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  });

  const ID = 'acme/classifier';
  function inputOf(): { name: string; tensor: WireTensor; bytes: number } {
    const fx = h.fixtures.classifier!;
    const shape = [1, 3, fx.size[1], fx.size[0]];
    const data = randomInput(3 * fx.size[0] * fx.size[1], 3);
    return { name: fx.inputName, tensor: { dtype: 'float32', shape, data }, bytes: data.byteLength };
  }

  describe('shared-memory routes (Triton shapes)', () => {
    it(mode === 'mmap' ? 'maps a registered region, unmaps it at unregister' : 'never maps the object', async () => {
      const o = object('maps', 8192);
      const mapped = () => readFileSync('/proc/self/maps', 'utf8').includes(`/dev/shm/${tag}-maps`);
      await h.client.registerSharedMemory('maps', o.key, 4096, 4096);
      expect(mapped()).toBe(mode === 'mmap');
      await h.client.unregisterSharedMemory('maps');
      expect(mapped()).toBe(false);
    });

    it('GET /v2 lists the extension; register, status, unregister', async () => {
      expect((await h.client.server()).extensions).toContain('system_shared_memory');
      const o = object('status', 4096);
      await h.client.registerSharedMemory('st', o.key, 1024, 512);
      expect(await h.client.sharedMemoryStatus()).toEqual([{ name: 'st', key: o.key, offset: 512, byte_size: 1024 }]);
      expect(await h.client.sharedMemoryStatus('st')).toEqual([
        { name: 'st', key: o.key, offset: 512, byte_size: 1024 },
      ]);
      expect(await codeOfRejection(h.client.registerSharedMemory('st', o.key, 16))).toBe('API_SHM_REGION_EXISTS');
      await h.client.unregisterSharedMemory('st');
      expect(await h.client.sharedMemoryStatus()).toEqual([]);
      expect(await codeOfRejection(h.client.sharedMemoryStatus('st'))).toBe('API_SHM_REGION_UNKNOWN');
      expect(await codeOfRejection(h.client.unregisterSharedMemory('st'))).toBe('API_SHM_REGION_UNKNOWN');
      // Unregister without a name drops them all.
      await h.client.registerSharedMemory('a', o.key, 16);
      await h.client.registerSharedMemory('b', o.key, 16, 16);
      await h.client.unregisterSharedMemory();
      expect(await h.client.sharedMemoryStatus()).toEqual([]);
    });
  });

  describe('tensors in shared memory equal the in-process run', () => {
    it('input and output by region, in a JSON request', async () => {
      const { name, tensor, bytes } = inputOf();
      const fx = h.fixtures.classifier!;
      const local = await h.runtime.infer(ID, { [name]: tensor });
      const expected = local.outputs[fx.outputName]!;
      const outBytes = expected.data.byteLength;
      // The region starts 64 bytes into the object, and the output sits after the input inside it.
      const o = object('io', 64 + bytes + outBytes + 32);
      o.write(64, tensor.data);
      await h.client.registerSharedMemory('io', o.key, bytes + outBytes + 32, 64);
      const r = await h.client.infer(
        ID,
        { [name]: { dtype: 'float32', shape: tensor.shape, shm: { region: 'io', offset: 0, byteSize: bytes } } },
        { outputs: [{ name: fx.outputName, shm: { region: 'io', offset: bytes, byteSize: outBytes + 32 } }] },
      );
      expect(r.outputs).toEqual({});
      const ref = r.shmOutputs[fx.outputName]!;
      expect(ref.shm).toEqual({ region: 'io', offset: bytes, byteSize: outBytes });
      expect(ref.shape).toEqual(expected.shape);
      expect(Array.from(o.readTensor(ref, 64).data as Float32Array)).toEqual(Array.from(expected.data as Float32Array));
      await h.client.unregisterSharedMemory('io');
    });

    it('input by region in a binary-framed request, output as binary data', async () => {
      const { name, tensor, bytes } = inputOf();
      const fx = h.fixtures.classifier!;
      const expected = (await h.runtime.infer(ID, { [name]: tensor })).outputs[fx.outputName]!;
      const o = object('bin', bytes);
      o.write(0, tensor.data);
      await h.client.registerSharedMemory('bin', o.key, bytes);
      const r = await h.client.infer(
        ID,
        { [name]: { dtype: 'float32', shape: tensor.shape, shm: { region: 'bin', offset: 0, byteSize: bytes } } },
        { binary: true },
      );
      expect(Array.from(r.outputs[fx.outputName]!.data as Float32Array)).toEqual(
        Array.from(expected.data as Float32Array),
      );
      // The same tensor sent as bytes gives the same answer.
      const viaBytes = await h.client.infer(ID, { [name]: tensor }, { binary: true });
      expect(viaBytes.outputs).toEqual(r.outputs);
      await h.client.unregisterSharedMemory('bin');
    });
  });

  describe('unsafe keys, ranges and states are refused with their codes', () => {
    it('keys with a path, .. or a symlink; objects that are missing or not files', async () => {
      const o = object('keys', 1024);
      for (const key of ['a/b', `/${tag}-keys/x`, '../etc/passwd', `/..${tag}`, '/', '', '/dev/shm/x'])
        expect(await codeOfRejection(h.client.registerSharedMemory('k', key, 16)), key).toBe('API_SHM_KEY_INVALID');
      // A symlink in /dev/shm that points at an ordinary file the agent could read.
      const secret = join(scratch, 'secret.txt');
      await writeFile(secret, 'not for clients'.repeat(100));
      const link = `/dev/shm/${tag}-link`;
      await symlink(secret, link);
      extra.push(link);
      expect(await codeOfRejection(h.client.registerSharedMemory('k', `/${tag}-link`, 16))).toBe('API_SHM_KEY_INVALID');
      expect(await codeOfRejection(h.client.registerSharedMemory('k', `/${tag}-absent`, 16))).toBe(
        'API_SHM_OBJECT_UNAVAILABLE',
      );
      const fifo = `/dev/shm/${tag}-fifo`;
      execFileSync('mkfifo', [fifo]);
      extra.push(fifo);
      expect(await codeOfRejection(h.client.registerSharedMemory('k', `/${tag}-fifo`, 16))).toBe(
        'API_SHM_OBJECT_UNAVAILABLE',
      );
      // Malformed bodies and region names.
      expect(await codeOfRejection(h.client.registerSharedMemory('k', o.key, 0))).toBe('API_SHM_BAD_REQUEST');
      expect(await codeOfRejection(h.client.registerSharedMemory('k', o.key, 16, -1))).toBe('API_SHM_BAD_REQUEST');
      expect(await codeOfRejection(h.client.registerSharedMemory('bad name!', o.key, 16))).toBe('API_SHM_BAD_REQUEST');
      expect(await h.client.sharedMemoryStatus()).toEqual([]);
    });

    it('a region larger than its object, past its end, or over the bounds', async () => {
      const o = object('range', 1024);
      expect(await codeOfRejection(h.client.registerSharedMemory('r', o.key, 1025))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.registerSharedMemory('r', o.key, 16, 1020))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.registerSharedMemory('r', o.key, 1, 1024))).toBe('API_SHM_OUT_OF_RANGE');
      for (const n of ['r1', 'r2', 'r3', 'r4']) await h.client.registerSharedMemory(n, o.key, 16);
      expect(await codeOfRejection(h.client.registerSharedMemory('r5', o.key, 16))).toBe('API_SHM_LIMIT');
      await h.client.unregisterSharedMemory();
      const big = object('big', 1024);
      await truncate(`/dev/shm/${tag}-big`, 40 * 1024 * 1024);
      await h.client.registerSharedMemory('b1', big.key, 40 * 1024 * 1024);
      expect(await codeOfRejection(h.client.registerSharedMemory('b2', big.key, 40 * 1024 * 1024))).toBe(
        'API_SHM_LIMIT',
      );
      await h.client.unregisterSharedMemory();
    });

    it('tensor offsets and sizes outside the region, unregistered regions, shrunk objects', async () => {
      const { name, tensor, bytes } = inputOf();
      const fx = h.fixtures.classifier!;
      const o = object('use', bytes + 256);
      o.write(0, tensor.data);
      await h.client.registerSharedMemory('use', o.key, bytes + 256);
      const input = (region: string, offset: number) => ({
        [name]: { dtype: 'float32' as const, shape: tensor.shape, shm: { region, offset, byteSize: bytes } },
      });
      expect(await codeOfRejection(h.client.infer(ID, input('use', 257)))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.infer(ID, input('use', 2 ** 40)))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.infer(ID, input('nope', 0)))).toBe('API_SHM_REGION_UNKNOWN');
      // A byte size that disagrees with the shape is the shape's error, as for binary data.
      const wrong = {
        [name]: { dtype: 'float32' as const, shape: tensor.shape, shm: { region: 'use', offset: 0, byteSize: 8 } },
      };
      expect(await codeOfRejection(h.client.infer(ID, wrong))).toBe('API_SHAPE_MISMATCH');
      // An output window too small for the output, and one outside the region.
      const outTo = (offset: number, byteSize: number) => ({
        outputs: [{ name: fx.outputName, shm: { region: 'use', offset, byteSize } }],
      });
      expect(await codeOfRejection(h.client.infer(ID, input('use', 0), outTo(bytes, 4)))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.infer(ID, input('use', 0), outTo(bytes + 200, 100)))).toBe(
        'API_SHM_OUT_OF_RANGE',
      );
      // The client shrinks its object after registering: the agent refuses, it neither crashes nor grows it.
      await truncate(`/dev/shm/${tag}-use`, 100);
      expect(await codeOfRejection(h.client.infer(ID, input('use', 0)))).toBe('API_SHM_OUT_OF_RANGE');
      expect(await codeOfRejection(h.client.infer(ID, { [name]: tensor }, outTo(96, 256)))).toBe(
        'API_SHM_OUT_OF_RANGE',
      );
      expect(existsSync(`/dev/shm/${tag}-use`)).toBe(true);
      expect((await h.client.health()).live).toBe(true);
      await h.client.unregisterSharedMemory('use');
      expect(await codeOfRejection(h.client.infer(ID, input('use', 0)))).toBe('API_SHM_REGION_UNKNOWN');
    });
  });
});
