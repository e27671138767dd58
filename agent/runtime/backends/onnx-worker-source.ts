/**
 * The code of an onnxruntime worker thread (onnx-workers.ts starts it). It is a plain CommonJS
 * string run with `eval: true`: a worker entry file would be a `.ts` file under tsx and vitest
 * (which neither can start as a worker entry on Node 20) and a `.js` file in dist/. It only
 * creates sessions and runs them; every check stays on the agent's side.
 */
export const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
const ARRAYS = { float32: Float32Array, float16: Uint16Array, uint8: Uint8Array, bool: Uint8Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array };
const sessions = new Map();
const align = (n) => (n + 7) & ~7;
async function handle(m) {
  if (m.op === 'load') {
    const s = await ort.InferenceSession.create(m.bytes, m.options);
    sessions.set(m.session, s);
    return [{ inputs: s.inputMetadata, outputs: s.outputMetadata }, []];
  }
  const s = sessions.get(m.session);
  if (!s) throw new Error('no session ' + m.session + ' in this worker');
  if (m.op === 'release') {
    sessions.delete(m.session);
    await s.release();
    return [null, []];
  }
  const feeds = {};
  for (const f of m.feeds) feeds[f.name] = new ort.Tensor(f.dtype, new ARRAYS[f.dtype](m.input, f.offset, f.length), f.dims);
  const out = await s.run(feeds);
  // Copied into the caller's buffer (memory already touched) and moved back: transferring
  // onnxruntime's own output memory costs a full copy into fresh pages (docs/performance.md).
  const names = Object.keys(out);
  let total = 0;
  for (const n of names) total = align(total) + ((out[n].data && out[n].data.byteLength) || 0);
  const buf = m.out && m.out.byteLength >= total ? m.out : new ArrayBuffer(2 ** Math.ceil(Math.log2(Math.max(8, total))));
  const outputs = [];
  let at = 0;
  for (const n of names) {
    const t = out[n];
    const d = t.data && t.data.byteLength !== undefined ? t.data : undefined;
    at = align(at);
    if (d) new Uint8Array(buf, at, d.byteLength).set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    outputs.push({ name: n, type: t.type, dims: t.dims, offset: at, bytes: d ? d.byteLength : 0 });
    at += d ? d.byteLength : 0;
  }
  const transfer = [buf, m.input];
  if (m.out && m.out !== buf) transfer.push(m.out);
  return [{ outputs, out: buf, input: m.input }, transfer];
}
let exitOnRun;
parentPort.on('message', (m) => {
  // The test hook of exitOnNextRun(): the thread ends itself, as a crash in a run would.
  if (m.op === 'exit-on-run') return void (exitOnRun = m.code);
  if (m.op === 'run' && exitOnRun !== undefined) process.exit(exitOnRun);
  handle(m).then(
    ([value, transfer]) => parentPort.postMessage({ id: m.id, ok: true, value }, transfer),
    (err) => parentPort.postMessage({ id: m.id, ok: false, message: String((err && err.message) || err)}),
  );
});
`;
