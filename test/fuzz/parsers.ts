import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { parseAppBody } from '../../cloud-broker/catalog/apps.js';
import { parseVersionBody } from '../../cloud-broker/catalog/parse-version-body.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';
import { parseAgentConfig } from '../../protocol/agent-config.js';
import { parseAppFile, parseAppFileText } from '../../protocol/app-file.js';
import { parseDesiredSigned, parseEnvelope, verifyDesired } from '../../protocol/desired-state.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { encodeInferRequest, parseInferRequest } from '../../protocol/kserve.js';
import { parseModelManifest } from '../../protocol/manifest.js';
import { parseReported } from '../../protocol/reported-state.js';
import { parseTelemetrySample } from '../../protocol/telemetry.js';

/**
 * Every `parse*` boundary of Outpost as a fuzz target (issue 11): each gets arbitrary values and
 * valid documents with one part replaced by an arbitrary value (so the fuzzer reaches the deep
 * checks, not only the first `typeof`). The property is the boundary's contract: it returns a
 * value or throws an OutpostError, nothing else. Used by test/unit/fuzz-parsers.test.ts (fixed
 * seed, CI) and bench/fuzz.ts (long mode).
 */
export interface FuzzTarget {
  name: string;
  input: fc.Arbitrary<unknown>;
  call(input: unknown): unknown;
}

const signer = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return createSigner(privateKey, publicKey);
})();
const SHA = 'a'.repeat(64);

const desiredSigned = {
  type: 'desired',
  device: 'dev-1',
  revision: 5,
  issued: '2026-06-01T11:00:00Z',
  expires: '2026-06-08T11:00:00Z',
  models: [
    {
      id: 'alice/detector',
      version: 2,
      framework: 'onnx',
      purpose: 'ObjectDetection',
      blobBase: 'https://cdn.example/blobs/',
      files: [
        { path: 'model.onnx', sha256: SHA, size: 10 },
        { path: 'labels/labels.txt', sha256: SHA, size: 3 },
      ],
    },
  ],
};
const reported = {
  type: 'reported',
  device: 'd1',
  agentVersion: '0.1.0',
  appliedRevision: 3,
  time: '2026-01-01T00:00:00Z',
  models: [{ id: 'o/m', version: 2, activeVersion: 1, state: 'downloading', progress: { bytes: 1, total: 9 } }],
  capabilities: { backends: [{ name: 'onnx', available: true }] },
};
const agentConfig = {
  deviceId: 'jetson-07',
  cloud: { http: 'https://cloud.example:8443', mqtt: 'mqtts://cloud.example:8883' },
  credentials: { username: 'jetson-07', token: 'tok-0123456789' },
  trustedKeys: [signer.trustedKey()],
  api: { maxBodyBytes: 1048576 },
  download: { parallel: 2 },
};
const manifest = {
  id: 'alice/detector',
  description: 'fuzz',
  public: false,
  model_parameters: {
    framework_type: 'onnx',
    purpose: 'ObjectDetection',
    model_file: 'model.onnx',
    label_file: 'labels.txt',
    size: [300, 300],
    mean: [0, 0, 0],
    scalefactor: 1,
    swaprb: false,
    crop: false,
  },
};
const appFile = { scripts: { start: 'python app.py' }, models: { 'alice/detector': 2, 'bob/pose': 1 } };
const versionBody = {
  manifest: { id: 'alice/detector', public: true, model_parameters: { framework_type: 'onnx', model_file: 'm.onnx' } },
  files: [{ path: 'm.onnx', sha256: SHA, size: 10 }],
};
const inferJson = {
  id: 'r1',
  parameters: { binary_data_output: true },
  inputs: [{ name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }],
  outputs: [{ name: 'y', parameters: { binary_data: false } }],
};

/** Every path (list of keys) inside a JSON-like value. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...prefix, i])));
  else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  return out;
}

/** A copy of `valid` with the value at one of its paths replaced (or deleted) by an arbitrary one. */
function mutated(valid: unknown): fc.Arbitrary<unknown> {
  const all = paths(valid);
  return fc
    .tuple(fc.nat({ max: all.length - 1 }), fc.oneof(fc.anything(), fc.constant(undefined)), fc.boolean())
    .map(([i, replacement, drop]) => {
      const copy = structuredClone(valid) as Record<string | number, unknown>;
      const p = all[i];
      if (p.length === 0) return replacement;
      let o = copy as Record<string | number, unknown>;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      if (drop) delete o[p[p.length - 1]];
      else o[p[p.length - 1]] = replacement;
      return copy;
    });
}

const json = (valid: unknown) => fc.oneof(fc.anything(), mutated(valid), fc.jsonValue());
const bytes = (valid: unknown) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    json(valid).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    fc.string().map((s) => Buffer.from(s)),
  );

const binaryBody = (() => {
  const enc = encodeInferRequest(
    { x: { dtype: 'float32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } },
    { binary: true },
  );
  return { body: Buffer.from(enc.body), headerLength: enc.headerLength ?? 0 };
})();

export const FUZZ_TARGETS: FuzzTarget[] = [
  { name: 'parseDesiredSigned', input: json(desiredSigned), call: (v) => parseDesiredSigned(v) },
  { name: 'parseEnvelope', input: json(signer.sign(desiredSigned)), call: (v) => parseEnvelope(v) },
  {
    name: 'verifyDesired',
    input: json(signer.sign(desiredSigned)),
    call: (v) =>
      verifyDesired(v, {
        trustedKeys: [signer.trustedKey()],
        deviceId: 'dev-1',
        now: new Date('2026-06-02T00:00:00Z'),
        lastRevision: 1,
      }),
  },
  { name: 'parseReported', input: fc.oneof(json(reported), bytes(reported)), call: (v) => parseReported(v as never) },
  { name: 'parseTelemetrySample', input: json({ cpu: 1 }), call: (v) => parseTelemetrySample(v) },
  { name: 'parseAgentConfig', input: json(agentConfig), call: (v) => parseAgentConfig(v, '/etc/outpost/agent.json') },
  { name: 'parseModelManifest', input: json(manifest), call: (v) => parseModelManifest(v) },
  { name: 'parseAppFile', input: json(appFile), call: (v) => parseAppFile(v) },
  {
    name: 'parseAppFileText',
    input: fc.oneof(
      fc.string(),
      json(appFile).map((v) => JSON.stringify(v) ?? ''),
    ),
    call: (v) => parseAppFileText(v as string),
  },
  { name: 'parseVersionBody', input: json(versionBody), call: (v) => parseVersionBody(v, 'alice/detector') },
  { name: 'parseAppBody', input: json({ models: appFile.models }), call: (v) => parseAppBody(v) },
  { name: 'parseInferRequest (JSON)', input: bytes(inferJson), call: (v) => parseInferRequest(v as Uint8Array) },
  {
    name: 'parseInferRequest (binary)',
    input: fc.tuple(
      fc.oneof(
        fc.uint8Array({ maxLength: 512 }),
        // The valid body with bytes flipped, cut or extended.
        fc
          .tuple(
            fc.nat({ max: binaryBody.body.length }),
            fc.integer({ min: 0, max: 255 }),
            fc.nat({ max: binaryBody.body.length + 16 }),
          )
          .map(([at, b, len]) => {
            const copy = Buffer.alloc(len);
            binaryBody.body.copy(copy, 0, 0, Math.min(len, binaryBody.body.length));
            if (at < len) copy[at] = b;
            return copy;
          }),
      ),
      fc.oneof(fc.constant(binaryBody.headerLength), fc.nat({ max: 1024 }), fc.constant(undefined)),
    ),
    call: (v) => {
      const [body, hl] = v as [Uint8Array, number | undefined];
      return parseInferRequest(body, hl);
    },
  },
];

/** The property: a value or an OutpostError, never another throw. */
export function checkTarget(t: FuzzTarget, opts: { numRuns: number; seed?: number }): void {
  fc.assert(
    fc.property(t.input, (input) => {
      try {
        t.call(input);
      } catch (err) {
        if (!(err instanceof OutpostError))
          throw new Error(`${t.name} threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
      }
    }),
    { numRuns: opts.numRuns, seed: opts.seed },
  );
}
