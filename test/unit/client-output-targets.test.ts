import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkTarget, OutputPlacer, targetsOf, type InferResult } from '../../agent/client/output-targets.js';
import { ResponseParser } from '../../agent/client/response-parser.js';
import { encodeInferResponse, type WireTensor, type WireTensorData } from '../../protocol/kserve.js';
import { codeOf } from '../helpers/error-code.js';

/**
 * Caller-supplied output buffers (agent/client/output-targets.ts): a real binary infer answer
 * (the agent's own encoder) cut at any byte boundaries, each piece either pushed (the pool's
 * shared read buffer) or written into the window the parser names (the kernel's direct read),
 * lands in the caller's arrays exactly; every misfit is refused with its code before one byte of
 * any target is written, and the connection stays usable.
 */
const SENTINEL = 0xa5;

const tensors = {
  boxes: { dtype: 'float32', shape: [1, 5, 4], data: Float32Array.from({ length: 20 }, (_, i) => i * 0.25 - 2) },
  ids: { dtype: 'int64', shape: [1, 5], data: BigInt64Array.from([3n, -1n, 2n ** 40n, 0n, 7n]) },
  mask: { dtype: 'uint8', shape: [2, 3], data: Uint8Array.from([1, 2, 3, 250, 251, 252]) },
  empty: { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
  score: { dtype: 'float32', shape: [1], data: Float32Array.from([0.5]) },
} satisfies Record<string, WireTensor>;

/** The answer as the agent sends it: `score` inline as JSON, `side` in a region, the rest binary. */
function answer(): Buffer {
  const enc = encodeInferResponse({ model_name: 'acme/m', model_version: '1' }, [
    { name: 'boxes', tensor: tensors.boxes, binary: true },
    { name: 'empty', tensor: tensors.empty, binary: true },
    { name: 'ids', tensor: tensors.ids, binary: true },
    { name: 'score', tensor: tensors.score, binary: false },
    { name: 'mask', tensor: tensors.mask, binary: true },
    { name: 'side', tensor: tensors.score, binary: true, shm: { region: 'r', offset: 8, byteSize: 4 } },
  ]);
  const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: ${enc.headerLength}\r\nContent-Length: ${enc.byteLength}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), enc.body]);
}

/**
 * Feeds `bytes` as a connection would: cut at `cuts`; when a piece starts and the parser names a
 * window (and `direct` says so for that piece), the piece (at most the window) goes into it.
 */
function feed(p: ResponseParser, bytes: Buffer, cuts: number[], direct: boolean[]): boolean {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  let k = 0;
  let done = false;
  for (const c of [...at, bytes.length]) {
    while (from < c) {
      const w = direct[k++ % Math.max(1, direct.length)] ? p.window() : undefined;
      if (w) {
        const n = Math.min(w.length, c - from);
        w.set(bytes.subarray(from, from + n));
        done = !!p.wrote(n) || done;
        from += n;
      } else {
        done = !!p.push(bytes.subarray(from, c)) || done;
        from = c;
      }
    }
  }
  return done;
}

function sentinel<T extends WireTensorData>(t: T): T {
  new Uint8Array(t.buffer, t.byteOffset, t.byteLength).fill(SENTINEL);
  return t;
}

function untouched(t: WireTensorData): boolean {
  return new Uint8Array(t.buffer, t.byteOffset, t.byteLength).every((b) => b === SENTINEL);
}

function read(targets: Map<string, WireTensorData>, cuts: number[] = [], direct: boolean[] = [true]) {
  const placer = new OutputPlacer(targets);
  const p = new ResponseParser(1 << 20, placer.sinkFor);
  const done = feed(p, answer(), cuts, direct);
  return { done, reusable: p.reusable, result: (): InferResult => placer.result(Buffer.alloc(0), undefined) };
}

describe('caller-supplied output buffers', () => {
  it('reads every binary output into its target, the answer cut anywhere, pushed or read in place', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 16 }), fc.array(fc.boolean(), { maxLength: 8 }), (cuts, direct) => {
        const boxes = sentinel(new Float32Array(20));
        // Larger than the output: the answer takes its first elements, the rest stays as it was.
        const ids = sentinel(new BigInt64Array(8));
        const score = sentinel(new Float32Array(1));
        const r = read(
          new Map<string, WireTensorData>([
            ['boxes', boxes],
            ['ids', ids],
            ['score', score],
          ]),
          cuts,
          direct,
        );
        expect(r.done).toBe(true);
        expect(r.reusable).toBe(true);
        const { outputs, shmOutputs, meta } = r.result();
        expect(meta.model_name).toBe('acme/m');
        expect(outputs.boxes!.data).toBe(boxes);
        expect(Array.from(boxes)).toEqual(Array.from(tensors.boxes.data));
        expect(outputs.ids!.data.buffer).toBe(ids.buffer);
        expect(Array.from(outputs.ids!.data as BigInt64Array)).toEqual(Array.from(tensors.ids.data));
        expect(untouched(ids.subarray(5))).toBe(true);
        // An output sent inline as JSON is copied into its target.
        expect(outputs.score!.data).toBe(score);
        expect(score[0]).toBe(0.5);
        // Outputs without a target get arrays of their own; a region output says where it is.
        expect(Array.from(outputs.mask!.data as Uint8Array)).toEqual(Array.from(tensors.mask.data));
        expect(outputs.empty!.data.length).toBe(0);
        expect(shmOutputs.side!.shm).toEqual({ region: 'r', offset: 8, byteSize: 4 });
      }),
    );
  });

  it('hands out windows only inside the targets and the answer, never past them', () => {
    const boxes = new Float32Array(20);
    const placer = new OutputPlacer(new Map([['boxes', boxes]]));
    const p = new ResponseParser(1 << 20, placer.sinkFor);
    const bytes = answer();
    const bodyStart = bytes.indexOf('\r\n\r\n') + 4;
    p.push(bytes.subarray(0, bodyStart));
    let from = bodyStart;
    let windows = 0;
    while (from < bytes.length) {
      // A window of the target: never a byte longer than what is still due of that output.
      const w = p.window() ?? Buffer.alloc(0);
      if (w.buffer === boxes.buffer) {
        windows++;
        expect(w.byteOffset + w.byteLength).toBeLessThanOrEqual(boxes.byteOffset + boxes.byteLength);
      }
      const n = w.length > 0 ? Math.min(w.length, 7) : 1;
      if (w.length > 0) {
        w.set(bytes.subarray(from, from + n));
        p.wrote(n);
      } else p.push(bytes.subarray(from, from + n));
      from += n;
    }
    expect(p.reusable).toBe(true);
    // 80 bytes is below the direct-read minimum: those went through push (copied).
    expect(windows).toBe(0);
    expect(Array.from(placer.result(Buffer.alloc(0), undefined).outputs.boxes!.data as Float32Array)).toEqual(
      Array.from(tensors.boxes.data),
    );
  });

  it.each([
    ['a typed array of another datatype', 'boxes', () => new Int32Array(20)],
    ['a Uint8Array for FP32 bytes', 'boxes', () => new Uint8Array(80)],
    ['an array one element short', 'boxes', () => new Float32Array(19)],
    ['a Float32Array for INT64', 'ids', () => new Float32Array(10)],
    ['an output the answer does not have', 'nope', () => new Float32Array(4)],
    ['an output the agent wrote into a region', 'side', () => new Float32Array(1)],
    ['an inline JSON output with too small a target', 'score', () => new Float32Array(0)],
  ])('refuses %s with API_OUTPUT_BUFFER_MISMATCH, writing nothing', (_, name, make) => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), fc.array(fc.boolean(), { maxLength: 4 }), (cuts, direct) => {
        const bad = sentinel(make());
        const boxes = name === 'boxes' ? bad : sentinel(new Float32Array(20));
        const targets = new Map<string, WireTensorData>([
          ['boxes', boxes],
          [name, bad],
        ]);
        const r = read(targets, cuts, direct);
        // The whole answer was read (and dropped): the connection can carry the next request.
        expect(r.done).toBe(true);
        expect(r.reusable).toBe(true);
        expect(codeOf(r.result)).toBe('API_OUTPUT_BUFFER_MISMATCH');
        expect(untouched(bad)).toBe(true);
        expect(untouched(boxes)).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it('refuses an answer whose tensors do not add up to its length with API_BAD_RESPONSE', () => {
    const good = answer();
    const text = good.toString('latin1');
    const cl = Number(/\r\nContent-Length: (\d+)/.exec(text)![1]);
    const bad = Buffer.concat([
      Buffer.from(
        text.slice(0, text.indexOf('\r\n\r\n')).replace(`\r\nContent-Length: ${cl}`, `\r\nContent-Length: ${cl + 4}`),
        'latin1',
      ),
      Buffer.from('\r\n\r\n'),
      good.subarray(good.indexOf('\r\n\r\n') + 4),
      Buffer.alloc(4),
    ]);
    const p = new ResponseParser(1 << 20, new OutputPlacer(new Map([['boxes', new Float32Array(20)]])).sinkFor);
    expect(codeOf(() => p.push(bad))).toBe('API_BAD_RESPONSE');
  });

  it('copies a JSON answer (no binary framing) into the targets with the same checks', () => {
    const enc = encodeInferResponse({ model_name: 'acme/m' }, [
      { name: 'boxes', tensor: tensors.boxes, binary: false },
    ]);
    const boxes = new Float32Array(20);
    const got = new OutputPlacer(new Map([['boxes', boxes]])).result(enc.body, undefined);
    expect(got.outputs.boxes!.data).toBe(boxes);
    expect(Array.from(boxes)).toEqual(Array.from(tensors.boxes.data));
    const small = sentinel(new Float32Array(3));
    expect(codeOf(() => new OutputPlacer(new Map([['boxes', small]])).result(enc.body, undefined))).toBe(
      'API_OUTPUT_BUFFER_MISMATCH',
    );
    expect(untouched(small)).toBe(true);
  });

  it.each([
    ['a plain array', [1, 2, 3]],
    ['an ArrayBuffer', new ArrayBuffer(8)],
    ['a DataView', new DataView(new ArrayBuffer(8))],
    ['a Float64Array (no agent datatype)', new Float64Array(2)],
    // @ts-expect-error: resizable ArrayBuffers are newer than this project's lib typings.
    ['a view of a resizable ArrayBuffer', new Float32Array(new ArrayBuffer(8, { maxByteLength: 64 }))],
  ])('refuses %s as a target with USAGE before anything is sent', (_, into) => {
    expect(codeOf(() => checkTarget('boxes', into))).toBe('USAGE');
  });

  it('refuses two targets over the same bytes, and accepts neighbours in one buffer', () => {
    const arena = new ArrayBuffer(64);
    const a = new Float32Array(arena, 0, 8);
    const b = new Float32Array(arena, 32, 8);
    expect(targetsOf([{ name: 'a', into: a }, { name: 'b', into: b }, 'c'])?.size).toBe(2);
    expect(
      codeOf(() =>
        targetsOf([
          { name: 'a', into: a },
          { name: 'b', into: new Float32Array(arena, 28, 2) },
        ]),
      ),
    ).toBe('USAGE');
    expect(
      codeOf(() =>
        targetsOf([
          { name: 'a', into: a },
          { name: 'a', into: b },
        ]),
      ),
    ).toBe('USAGE');
    expect(codeOf(() => targetsOf([{ name: 'a', into: a, shm: { region: 'r' } }]))).toBe('USAGE');
    expect(targetsOf(['a', { name: 'b' }])).toBeUndefined();
  });
});
