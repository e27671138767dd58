import { OutpostError } from '../../protocol/errors/index.js';
import {
  elementBytes,
  elementCount,
  parseInferResponse,
  type InferResponseJson,
  type ShmTensor,
  type WireDType,
  type WireTensor,
  type WireTensorData,
} from '../../protocol/kserve.js';
import { allocate, view } from '../../protocol/kserve/wire.js';
import { bytesOf } from '../../protocol/kserve/binary.js';
import { fromJsonData } from '../../protocol/kserve/json.js';
import { parseInferResponseHeader, responseOutputs } from '../../protocol/kserve/response.js';
import type { BodySink } from './response-parser.js';

/**
 * Caller-supplied output buffers for `infer` (`outputs: [{ name, into }]`): the answer's tensor
 * bytes are read from the socket straight into the app's typed arrays, with no buffer of the
 * client's own in between.
 *
 * Why: an app that runs a model many times a second keeps the same output arrays, and a fresh
 * 512 KiB answer buffer per request was the largest item of the client's CPU (its garbage
 * collector, docs/performance.md). Triton's shared-memory outputs follow the same rule: the
 * caller's memory must hold at least the output (it may be larger), so a buffer sized for the
 * largest answer serves outputs with free dimensions too.
 *
 * Safety: the answer's JSON header is read and checked first. Only when every target is the
 * output's datatype and large enough are tensor bytes written, and only inside the target's first
 * `byteSize` bytes. A mismatch is API_OUTPUT_BUFFER_MISMATCH: the rest of the answer is read and
 * dropped (the connection stays usable) and no byte of any target is written.
 */
export type InferResult = {
  meta: InferResponseJson;
  outputs: Record<string, WireTensor>;
  shmOutputs: Record<string, ShmTensor>;
};

/** The typed array each dtype travels in (toStringTag, so arrays from another realm fit too). */
const ARRAY_OF: Readonly<Record<WireDType, string>> = {
  float32: 'Float32Array',
  float16: 'Uint16Array',
  uint8: 'Uint8Array',
  bool: 'Uint8Array',
  int8: 'Int8Array',
  int32: 'Int32Array',
  int64: 'BigInt64Array',
};
const ARRAY_KINDS = new Set(Object.values(ARRAY_OF));

/** Dropped bytes of a refused answer land here; nobody reads it (reads run one at a time). */
const DISCARD = Buffer.allocUnsafe(64 * 1024);

/**
 * The outputs to read into caller arrays, checked before anything is sent (USAGE); undefined if
 * none. Two targets over the same bytes are refused too: one output's bytes would land in the other.
 */
export function targetsOf(
  outputs: readonly (string | { name: string; shm?: unknown; into?: unknown })[] | undefined,
): Map<string, WireTensorData> | undefined {
  let targets: Map<string, WireTensorData> | undefined;
  for (const o of outputs ?? []) {
    if (typeof o === 'string' || o.into === undefined) continue;
    if (o.shm) throw new OutpostError('USAGE', `output ${o.name}: give "shm" or "into", not both`, { output: o.name });
    targets ??= new Map();
    if (targets.has(o.name)) throw new OutpostError('USAGE', `output ${o.name} is listed twice`, { output: o.name });
    const into = checkTarget(o.name, o.into);
    for (const [other, t] of targets)
      if (
        t.buffer === into.buffer &&
        t.byteOffset < into.byteOffset + into.byteLength &&
        into.byteOffset < t.byteOffset + t.byteLength
      )
        throw new OutpostError('USAGE', `outputs ${other} and ${o.name}: their "into" arrays share bytes`, {
          output: o.name,
        });
    targets.set(o.name, into);
  }
  return targets;
}

/** Checks a target when the request is made, before anything is sent. */
export function checkTarget(name: string, into: unknown): WireTensorData {
  const kind = ArrayBuffer.isView(into) ? (into as Uint8Array)[Symbol.toStringTag] : undefined;
  if (kind === undefined || !ARRAY_KINDS.has(kind))
    throw new OutpostError(
      'USAGE',
      `output ${name}: "into" must be a typed array (${[...ARRAY_KINDS].join(', ')}), not ${describe(into)}`,
      { output: name },
    );
  // A resizable buffer could shrink under a read in flight; the kernel writes into raw memory.
  if (
    (into as Uint8Array).buffer instanceof ArrayBuffer &&
    ((into as Uint8Array).buffer as { resizable?: boolean }).resizable
  )
    throw new OutpostError('USAGE', `output ${name}: "into" must not be a view of a resizable ArrayBuffer`, {
      output: name,
    });
  return into as WireTensorData;
}

/**
 * Reads one infer answer into the targets. `sinkFor` is given to the connection: it takes the
 * body of a binary (Inference-Header-Content-Length) answer with status 200. Anything else (an
 * error answer, a JSON answer) arrives in the client's own buffer and `result` copies it over.
 */
export class OutputPlacer {
  private sink: TargetSink | undefined;

  constructor(private readonly targets: ReadonlyMap<string, WireTensorData>) {}

  readonly sinkFor = (status: number, headers: Record<string, string>, length: number): BodySink | undefined => {
    const hl = headers['inference-header-content-length'];
    // Anything odd goes the default way, where parseInferResponse says what is wrong with it.
    if (status !== 200 || hl === undefined || !/^\d{1,15}$/.test(hl) || Number(hl) > length || Number(hl) === 0)
      return undefined;
    this.sink = new TargetSink(this.targets, Number(hl), length);
    return this.sink;
  };

  /** The parsed answer, its tensors in the targets; throws API_OUTPUT_BUFFER_MISMATCH on a misfit. */
  result(body: Buffer, headerLength: number | undefined): InferResult {
    if (this.sink) return this.sink.result();
    const parsed = parseInferResponse(body, headerLength);
    const misfit = misfitOf(this.targets, parsed.meta, parsed.outputs);
    if (misfit) throw misfit;
    for (const name of this.targets.keys()) parsed.outputs[name] = copyInto(this.targets, parsed.outputs[name]!, name);
    return parsed;
  }
}

class TargetSink implements BodySink {
  private readonly header: Buffer;
  private at = 0;
  /** Where each binary output's bytes go, in the order they follow the header. */
  private readonly pieces: Uint8Array[] = [];
  private piece = 0;
  private pieceAt = 0;
  private refused: OutpostError | undefined;
  private discardLeft = 0;
  private parsed: InferResult | undefined;

  constructor(
    private readonly targets: ReadonlyMap<string, WireTensorData>,
    headerLength: number,
    private readonly length: number,
  ) {
    this.header = Buffer.allocUnsafe(headerLength);
  }

  window(): Uint8Array {
    if (this.at < this.header.length) return this.header.subarray(this.at);
    if (this.refused) return DISCARD.subarray(0, Math.min(DISCARD.length, this.discardLeft));
    return this.pieces[this.piece]!.subarray(this.pieceAt);
  }

  wrote(n: number): void {
    if (this.at < this.header.length) {
      this.at += n;
      if (this.at === this.header.length) this.place();
    } else if (this.refused) {
      this.discardLeft -= n;
    } else {
      this.pieceAt += n;
      this.skipFull();
    }
  }

  result(): InferResult {
    if (this.refused) throw this.refused;
    return this.parsed!;
  }

  /** Moves past finished (and empty) pieces, so that window() has room while bytes are due. */
  private skipFull(): void {
    while (this.piece < this.pieces.length && this.pieceAt === this.pieces[this.piece]!.length) {
      this.piece++;
      this.pieceAt = 0;
    }
  }

  /** The header is in: check it against the targets and lay out where every tensor goes. */
  private place(): void {
    const meta = parseInferResponseHeader(this.header);
    const described = responseOutputs(meta);
    let total = 0;
    for (const o of described) if (o.kind === 'binary') total += o.byteSize;
    if (this.header.length + total !== this.length)
      throw new OutpostError(
        'API_BAD_RESPONSE',
        `the inference answer's tensors (${total} bytes) and header (${this.header.length}) do not add up to its ${this.length} bytes`,
      );
    const outputs: Record<string, WireTensor> = {};
    const shmOutputs: Record<string, ShmTensor> = {};
    for (const o of described) {
      if (o.kind === 'shm') shmOutputs[o.name] = { dtype: o.dtype, shape: o.shape, shm: o.shm };
      else if (o.kind === 'json')
        outputs[o.name] = {
          dtype: o.dtype,
          shape: o.shape,
          data: fromJsonData(o.values, o.dtype, `outputs.${o.name}`),
        };
      else outputs[o.name] = { dtype: o.dtype, shape: o.shape, data: allocate(o.dtype, 0) };
    }
    this.refused = misfitOf(this.targets, meta, outputs);
    if (this.refused) {
      this.discardLeft = total;
      return;
    }
    for (const o of described) {
      if (o.kind === 'json' && this.targets.has(o.name))
        outputs[o.name] = copyInto(this.targets, outputs[o.name]!, o.name);
      if (o.kind !== 'binary') continue;
      const into = this.targets.get(o.name);
      const data = into ? viewOf(into, o.n) : allocate(o.dtype, o.n);
      outputs[o.name] = { dtype: o.dtype, shape: o.shape, data };
      this.pieces.push(bytesOf(data));
    }
    this.parsed = { meta, outputs, shmOutputs };
    this.skipFull();
  }
}

/**
 * Why the answer's outputs do not fit the targets, or undefined. `outputs`: those that came with
 * data (binary or JSON); a target whose output came in a region, or not at all, is a misfit too.
 */
function misfitOf(
  targets: ReadonlyMap<string, WireTensorData>,
  meta: InferResponseJson,
  outputs: Record<string, WireTensor>,
): OutpostError | undefined {
  for (const [name, into] of targets) {
    const o = meta.outputs.find((x) => x.name === name);
    const t = Object.hasOwn(outputs, name) ? outputs[name] : undefined;
    if (!o || !t)
      return mismatch(
        name,
        `the answer has no data for output ${name} (its outputs: ${meta.outputs.map((x) => x.name).join(', ') || 'none'})`,
      );
    const want = ARRAY_OF[t.dtype];
    const kind = (into as Uint8Array)[Symbol.toStringTag];
    if (kind !== want)
      return mismatch(name, `output ${name} is ${o.datatype}, which needs a ${want}; "into" is a ${kind}`);
    // A JSON output's values are counted too: they are what gets copied.
    const n = Math.max(elementCount(t.shape), t.data.length);
    if (into.length < n)
      return mismatch(
        name,
        `output ${name} has shape [${t.shape.join(', ')}] (${n} elements, ${n * elementBytes(t.dtype)} bytes); "into" holds ${into.length} elements`,
      );
  }
  return undefined;
}

function mismatch(output: string, message: string): OutpostError {
  return new OutpostError('API_OUTPUT_BUFFER_MISMATCH', message, { output });
}

/** `t` (decoded from JSON, or a view of the client's buffer) copied into its target. */
function copyInto(targets: ReadonlyMap<string, WireTensorData>, t: WireTensor, name: string): WireTensor {
  const data = viewOf(targets.get(name)!, t.data.length);
  bytesOf(data).set(bytesOf(t.data));
  return { dtype: t.dtype, shape: t.shape, data };
}

/** The target itself when it is exactly the output's size, else a view of its first `n` elements. */
function viewOf(into: WireTensorData, n: number): WireTensorData {
  if (into.length === n) return into;
  const kind = (into as Uint8Array)[Symbol.toStringTag];
  const dtype = (Object.keys(ARRAY_OF) as WireDType[]).find((d) => ARRAY_OF[d] === kind)!;
  return view(dtype, into.buffer, into.byteOffset, n);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (ArrayBuffer.isView(v)) return (v as Uint8Array)[Symbol.toStringTag] ?? 'a DataView';
  if (v instanceof ArrayBuffer) return 'an ArrayBuffer (pass a typed array over it)';
  return typeof v;
}
