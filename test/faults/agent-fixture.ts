import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { DesiredFile, DesiredSigned } from '../../protocol/desired-state.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { runInProcess } from '../helpers/cli.js';
import type { TestFleet } from '../helpers/fleet.js';

/**
 * Shared by the agent-level fault tests: models of any size that the real runtime still loads,
 * published through the real CLI, and the "old or new complete version" check of a models folder.
 */

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/**
 * Pads an ONNX model to about `bytes` with one unknown length-delimited field (number 1000):
 * protobuf readers skip unknown fields, so onnxruntime loads and runs it unchanged. `fill`
 * makes each version's bytes (and sha256) distinct.
 */
export function padOnnx(model: Uint8Array, bytes: number, fill: number): Buffer {
  const pad = Buffer.alloc(Math.max(0, bytes - model.length - 10), fill & 0xff);
  return Buffer.concat([Buffer.from(model), Buffer.from([...varint((1000 << 3) | 2), ...varint(pad.length)]), pad]);
}

/** Publishes a classifier (red/green/blue) whose model.onnx is padded to `bytes`; returns the version. */
export async function publishPadded(f: TestFleet, id: string, bytes: number, fill: number): Promise<number> {
  const dir = join(f.root, `padded-${fill}-${Date.now()}`);
  const fx = await writeModelFolder(dir, 'classifier', { id });
  await writeFile(join(dir, 'model.onnx'), padOnnx(fx.bytes, bytes, fill));
  const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: f.env });
  if (run.code !== 0) throw new Error(`publish failed (${run.code}): ${run.stdout} ${run.stderr}`);
  return run.json<{ version: number }>().version;
}

/** The signed file list of each version the cloud has put in a device's desired state. */
export function filesInDesired(f: TestFleet, device: string, into: Map<number, DesiredFile[]>): void {
  const signed: DesiredSigned | null = f.cloud.fleet.fleet.signedOf(device);
  for (const m of signed?.models ?? []) into.set(m.version, m.files);
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

/** Null when `dir` holds exactly `files` (same paths, every file hashed), else what differs. */
export async function folderProblem(dir: string, files: readonly DesiredFile[]): Promise<string | null> {
  const have = (await walk(dir)).map((p) => relative(dir, p)).sort();
  const want = files.map((x) => x.path).sort();
  if (JSON.stringify(have) !== JSON.stringify(want)) return `files ${JSON.stringify(have)} != ${JSON.stringify(want)}`;
  for (const file of files) {
    const data = await readFile(join(dir, file.path));
    const sha = createHash('sha256').update(data).digest('hex');
    if (sha !== file.sha256 || data.length !== file.size) return `${file.path}: ${data.length} bytes ${sha.slice(0, 12)}, signed ${file.size} ${file.sha256.slice(0, 12)}`;
  }
  return null;
}

/**
 * The crash-consistency check of one model: `current` points at one of `allowed`, and every
 * version folder present is complete (files hashed against the signed list). Returns current.
 */
export async function checkModelFolder(modelsDir: string, id: string, allowed: readonly number[], signed: ReadonlyMap<number, DesiredFile[]>): Promise<number> {
  const modelDir = join(modelsDir, id);
  const st = await lstat(join(modelDir, 'current'));
  if (!st.isSymbolicLink()) throw new Error(`${id}/current is not a symlink`);
  const current = Number(/(\d+)$/.exec(await readlink(join(modelDir, 'current')))?.[1]);
  if (!allowed.includes(current)) throw new Error(`${id}/current is ${current}, expected one of ${allowed.join(', ')}`);
  for (const name of await readdir(join(modelDir, 'versions'))) {
    const files = signed.get(Number(name));
    if (!files) throw new Error(`unexpected version folder ${name}`);
    const problem = await folderProblem(join(modelDir, 'versions', name), files);
    if (problem) throw new Error(`version ${name} is not complete: ${problem}`);
  }
  return current;
}
