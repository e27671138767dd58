// The footprint floor of the agent benchmarks: a bare Node process that loads onnxruntime-node
// and opens an InferenceSession for each model file given, then says READY on stdout and idles
// until SIGTERM. Plain JavaScript run by node, like the compiled agent, so the only difference
// left is the agent itself (config, store, runtime, socket API, sync).
import * as ort from 'onnxruntime-node';

const sessions = [];
for (const file of process.argv.slice(2)) sessions.push(await ort.InferenceSession.create(file));
process.stdout.write(`READY ${sessions.length}\n`);
const idle = setInterval(() => {}, 60_000);
process.once('SIGTERM', () => {
  clearInterval(idle);
  Promise.all(sessions.map((s) => s.release())).then(() => process.exit(0));
});
