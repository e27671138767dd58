import { lstat, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredFile, DesiredSigned } from '../../protocol/desired-state.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import type { BlobServer } from '../helpers/blob-server.js';
import { runInProcess } from '../helpers/cli.js';
import { padOnnx } from '../helpers/onnx-pad.js';
import { folderProblem } from '../helpers/folder-check.js';
import type { TestFleet } from '../helpers/fleet.js';
import { blobDir } from '../helpers/blob-dir.js';

/**
 * Shared by the agent-level fault tests: models of any size that the real runtime still loads,
 * published through the real CLI, and the "old or new complete version" check of a models folder.
 */

/** Publishes a classifier (red/green/blue) whose model.onnx is padded to `bytes`; returns the version. */
export async function publishPadded(f: TestFleet, id: string, bytes: number, fill: number): Promise<number> {
  const dir = join(f.root, `padded-${fill}-${Date.now()}`);
  const fx = await writeModelFolder(dir, 'classifier', { id });
  await writeFile(join(dir, 'model.onnx'), padOnnx(fx.bytes, bytes, fill));
  const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: f.env });
  if (run.code !== 0) throw new Error(`publish failed (${run.code}): ${run.stdout} ${run.stderr}`);
  return run.json<{ version: number }>().version;
}

/** A padded-classifier model that one device gets from a mirror the test controls. */
export interface MirroredModel {
  /** The signed file list of each version deployed so far. */
  readonly signed: Map<number, DesiredFile[]>;
  /** Publishes a version padded to about `bytes` and copies every blob the cloud holds to the mirror. */
  publish(bytes: number, fill: number): Promise<number>;
  /** Deploys `version` to the device; returns the signed entry of its model.onnx. */
  deploy(version: number): Promise<DesiredFile>;
}

/**
 * Points the fleet's signed blob base at `mirror` (docs/security.md allows it: every byte is
 * verified against the signed hash, so a mirror needs no trust) so that a test can make the
 * downloads throttle, cut or ignore Range while the cloud itself behaves.
 */
export function mirroredModel(f: TestFleet, mirror: BlobServer, model: string, device: string): MirroredModel {
  f.cloud.fleet.fleet.useBlobMirror(`${mirror.url}/v1/blobs/`);
  const signed = new Map<number, DesiredFile[]>();
  return {
    signed,
    async publish(bytes, fill) {
      const v = await publishPadded(f, model, bytes, fill);
      const root = join(blobDir(f.cloud).root, 'sha256');
      for (const d of await readdir(root))
        for (const name of await readdir(join(root, d))) mirror.add(await readFile(join(root, d, name)));
      return v;
    },
    async deploy(version) {
      await f.cloud.fleet.fleet.deploy({ model: `${model}@${version}` }, { kind: 'device', value: device });
      filesInDesired(f, device, signed);
      return signed.get(version)!.find((x) => x.path === 'model.onnx')!;
    },
  };
}

/** The signed file list of each version the cloud has put in a device's desired state. */
export function filesInDesired(f: TestFleet, device: string, into: Map<number, DesiredFile[]>): void {
  const signed: DesiredSigned | null = f.cloud.fleet.fleet.signedOf(device);
  for (const m of signed?.models ?? []) into.set(m.version, m.files);
}

/**
 * The crash-consistency check of one model: `current` points at one of `allowed`, and every
 * version folder present is complete (files hashed against the signed list). Returns current.
 */
export async function checkModelFolder(
  modelsDir: string,
  id: string,
  allowed: readonly number[],
  signed: ReadonlyMap<number, DesiredFile[]>,
): Promise<number> {
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
