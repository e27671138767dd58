import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COLOR_BIAS, COLOR_LABELS, COLOR_WEIGHTS } from '../../cloud-broker/demo/color-classifier.js';

/**
 * The README's first command, run as a user runs it: `npm run -s demo -- --json` in the
 * repository (a real cloud, the real CLI verbs, a real agent child process, a real prediction
 * through its socket). This is how CI runs the quickstart.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OUTPOST_') && k !== 'NOTIFY_SOCKET') env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface DemoJson {
  dir: string;
  temporary: boolean;
  removed: boolean;
  model: { id: string; version: number };
  device: { socket: string; modelsDir: string; agentLog: string; agentPid: number };
  cloud: { dataDir: string };
  prediction: { label: string; confidence: number };
  answer: { predictions: { label: string; confidence: number }[] };
  agentExit: number | null;
}

function lastJson(r: Run): DemoJson {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as DemoJson;
  } catch {
    throw new Error(`no JSON result (exit ${r.code}); stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line mentions `needle` (a leftover agent would name its demo folder). */
async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) found.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`);
  }
  return found;
}

/** What the demo's classifier answers for the demo's image, from its weights (softmax of W·mean + B). */
function expectedConfidences(rgb: [number, number, number]): number[] {
  const m = rgb.map((c) => c / 255);
  const scores = [0, 1, 2].map(
    (i) =>
      COLOR_WEIGHTS[i * 3]! * m[0]! +
      COLOR_WEIGHTS[i * 3 + 1]! * m[1]! +
      COLOR_WEIGHTS[i * 3 + 2]! * m[2]! +
      COLOR_BIAS[i]!,
  );
  const e = scores.map(Math.exp);
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

describe('quickstart: npm run demo', () => {
  it('runs cloud, agent and a generated model to a real prediction of red, then leaves nothing running', async () => {
    const r = await run('npm', ['run', '-s', 'demo', '--', '--json']);
    const out = lastJson(r);
    expect(r.code, r.stderr).toBe(0);
    // Progress went to stderr, one line per step, ending with the clean stop.
    expect(r.stderr).toMatch(/\[9\/9\] stopped the agent \(exit 0\)/);
    expect(out.model).toEqual({ id: 'demo/colors', version: 1, folder: expect.any(String) });
    expect(out.prediction.label).toBe('red');
    // The confidences are the classifier's arithmetic on the red image (220, 30, 30), not constants.
    const want = expectedConfidences([220, 30, 30]);
    const got = Object.fromEntries(out.answer.predictions.map((p) => [p.label, p.confidence]));
    COLOR_LABELS.forEach((label, i) => expect(got[label]).toBeCloseTo(want[i]!, 3));
    expect(out.agentExit).toBe(0);
    expect(out.temporary && out.removed).toBe(true);
    expect(existsSync(out.dir)).toBe(false);
    expect(alive(out.device.agentPid)).toBe(false);
    expect(await processesMentioning(out.dir)).toEqual([]);
  }, 180_000);

  it('with --data-dir keeps the data, the agent and cloud remove their socket and cloud.json on the way out, and a rerun converges', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-qs-'));
    try {
      const r = await run(process.execPath, [
        join(REPO, 'cloud-broker', 'cli', 'outpost.js'),
        'demo',
        '--json',
        '--data-dir',
        dir,
      ]);
      const out = lastJson(r);
      expect(r.code, r.stderr).toBe(0);
      expect(out.prediction.label).toBe('red');
      expect(out.removed).toBe(false);
      expect(existsSync(out.device.socket)).toBe(false);
      expect(existsSync(join(out.cloud.dataDir, 'cloud.json'))).toBe(false);
      expect(alive(out.device.agentPid)).toBe(false);
      expect(await processesMentioning(dir)).toEqual([]);
      // What the device installed stays: the model's current version and the agent's log.
      expect(await readlink(join(out.device.modelsDir, 'demo', 'colors', 'current'))).toContain('1');
      expect((await stat(out.device.agentLog)).size).toBeGreaterThan(0);

      // Run again on the same folder: the version is unchanged, the device gets new credentials,
      // and the agent (whose model is already installed) must still report the new revision.
      const again = await run(process.execPath, [
        join(REPO, 'cloud-broker', 'cli', 'outpost.js'),
        'demo',
        '--json',
        '--data-dir',
        dir,
        '--timeout',
        '30',
      ]);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stderr).toContain('unchanged, already published');
      expect(again.stderr).toContain('again, new credentials');
      expect(lastJson(again).prediction.label).toBe('red');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
