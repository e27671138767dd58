import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeJpeg, noiseImage } from '../test/fixtures/images.js';
import { PYTHON } from '../test/helpers/python.js';
import type { BenchRow } from './run.js';
import { startAgentProcess } from './_bench-agent.js';

/**
 * The Python client's predict (agent/client/python/outpost_client.py) against the plainest
 * request Python can make for the same answer: http.client over the same kind of kept-alive
 * Unix-socket connection, the JPEG as the body, the JSON parsed. Both run in one python3
 * process, interleaved, against the bench agent (a child process serving the 224x224
 * classifier), so the ratio is what the client adds. Goal: at most 1.10.
 */
const CLIENT_DIR = fileURLToPath(new URL('../agent/client/python', import.meta.url));
const N = 300;

const SCRIPT = `
import http.client, json, socket, sys, time
sys.path.insert(0, sys.argv[3])
import outpost_client as oc
sock, jpeg = sys.argv[1], open(sys.argv[2], 'rb').read()
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(sock)
raw = Conn('localhost')
def plain():
    raw.request('POST', '/v1/models/bench/classifier224/predict', jpeg, {'Content-Type': 'application/octet-stream'})
    return json.loads(raw.getresponse().read())
client = oc.Client(sock)
def ours():
    return client.predict('bench/classifier224', jpeg)
assert plain()['predictions'] == ours()['predictions']
t = {'plain': [], 'ours': []}
for i in range(${N} + 20):
    for name, f in (('plain', plain), ('ours', ours)) if i % 2 else (('ours', ours), ('plain', plain)):
        t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
        if i >= 20: t[name].append(dt * 1000)
for v in t.values(): v.sort()
print(json.dumps({k: v[len(v) // 2] for k, v in t.items()}))
`;

export async function run(): Promise<BenchRow[]> {
  const name = 'python client predict, 224x224 classifier';
  try {
    execFileSync(PYTHON, ['-c', 'import http.client']);
  } catch {
    return [{ name, metric: 'p50 ms', ours: NaN, note: 'python3 missing: not run' }];
  }
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-py-'));
  const agent = await startAgentProcess(dir);
  try {
    const jpeg = join(dir, 'frame.jpg');
    await writeFile(jpeg, await encodeJpeg(noiseImage(640, 480, 3), 90));
    const script = join(dir, 'bench.py');
    await writeFile(script, SCRIPT);
    const out = JSON.parse(execFileSync(PYTHON, [script, agent.socket, jpeg, CLIENT_DIR]).toString()) as {
      plain: number;
      ours: number;
    };
    return [
      {
        name,
        metric: 'p50 ms',
        ours: out.ours,
        baseline: out.plain,
        baselineName: 'plain http.client request',
        ratio: out.ours / out.plain,
        note: 'goal <= 1.10; 640x480 JPEG',
      },
    ];
  } finally {
    agent.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}
