// The footprint floor of the agent benchmarks: a bare Node process that loads onnxruntime-node
// and opens an InferenceSession for each model file given, then says READY on stdout and idles
// until SIGTERM. Plain JavaScript run by node, like the agent's bundle, so the only difference
// left is the agent itself (config, store, runtime, socket API, sync).
//
// The sessions are opened with the agent's own session options (OUTPOST_FLOOR_SESSION_OPTIONS,
// JSON, from agent/runtime/backends/onnx-options.ts): onnxruntime's defaults start an intra-op
// thread pool per session (here 10 more threads and about 0.5 MiB, and a slower start), which
// the agent does not, so a floor on defaults would flatter the agent's ratios.
import * as ort from 'onnxruntime-node';

const options = JSON.parse(process.env.OUTPOST_FLOOR_SESSION_OPTIONS ?? '{}');
const sessions = [];
for (const file of process.argv.slice(2)) sessions.push(await ort.InferenceSession.create(file, options));
process.stdout.write(`READY ${sessions.length}\n`);
const idle = setInterval(() => {}, 60_000);
process.once('SIGTERM', () => {
  clearInterval(idle);
  Promise.all(sessions.map((s) => s.release())).then(() => process.exit(0));
});
