import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { testDatabase } from './test-db.js';
import { GraphBuilder } from '../fixtures/onnx/graph.js';
import { cleanEnv, runInProcess, tempDir } from './cli.js';

/**
 * The model developer's set-up shared by the CLI tests: a real cloud on port 0 in a temp folder
 * with users, an environment per user as the CLI reads it, and a folder configured and published
 * through the real `outpost model configure` / `model publish`.
 */
export interface CliCloud {
  readonly cloud: Cloud;
  /** The temp folder: the cloud's data dir is `cloud/` in it, and HOME points here. */
  readonly root: string;
  readonly adminToken: string;
  readonly admin: CloudClient;
  token(user?: string): string;
  /** The CLI's environment for `user` (default: the first one): cloud URL, token, HOME. */
  env(user?: string): NodeJS.ProcessEnv;
}

/** Starts the cloud before the file's tests (users created in order) and stops it after. */
export function useCliCloud(prefix: string, users: readonly string[] = ['alice']): CliCloud {
  const tokens = new Map<string, string>();
  let cleanup: (() => Promise<void>) | undefined;
  const c = {
    token: (user = users[0]!) => tokens.get(user)!,
    env: (user = users[0]!) =>
      cleanEnv({ OUTPOST_CLOUD_URL: c.cloud.httpUrl, OUTPOST_TOKEN: c.token(user), HOME: c.root }),
  } as CliCloud & { cloud: Cloud; root: string; adminToken: string; admin: CloudClient };
  beforeAll(async () => {
    ({ dir: c.root, cleanup } = await tempDir(prefix));
    c.cloud = await startCloud({
      dataDir: join(c.root, 'cloud'),
      database: await testDatabase(),
      host: '127.0.0.1',
      httpPort: 0,
      mqttPort: 0,
    });
    c.adminToken = (await readFile(c.cloud.adminTokenFile, 'utf8')).trim();
    c.admin = new CloudClient({ url: c.cloud.httpUrl, token: c.adminToken });
    for (const u of users) tokens.set(u, (await c.admin.createUser(u)).token);
  });
  afterAll(async () => {
    await c.cloud?.close();
    await cleanup?.();
  });
  return c;
}

/** Writes `files` into a new folder `dir`. */
export async function writeFolder(dir: string, files: Record<string, string | Uint8Array>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

/** Edits the folder's alwaysai.model.json as JSON. */
export async function editModelJson(dir: string, edit: (m: Record<string, any>) => Record<string, any>): Promise<void> {
  const p = join(dir, 'alwaysai.model.json');
  await writeFile(p, JSON.stringify(edit(JSON.parse(await readFile(p, 'utf8'))), null, 2));
}

/**
 * `outpost model configure` of an ONNX classifier whose folder holds m.onnx and labels.txt
 * (`--size` when given; without it the CLI reads the size from the model), then sets the id.
 */
export async function configureClassifier(
  dir: string,
  env: NodeJS.ProcessEnv,
  opts: { id: string; size?: string },
): Promise<void> {
  const argv = ['model', 'configure', '--framework', 'onnx', '--purpose', 'Classification'];
  argv.push('--model_file', 'm.onnx', '--label_file', 'labels.txt', ...(opts.size ? ['--size', opts.size] : []));
  const run = await runInProcess(argv, { cwd: dir, env });
  expect(run.code, run.stderr).toBe(0);
  await editModelJson(dir, (m) => ({ ...m, id: opts.id }));
}

/** `outpost model publish --json` in the folder; returns the version the catalog gave it. */
export async function publishFolder(dir: string, env: NodeJS.ProcessEnv): Promise<number> {
  const run = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env });
  expect(run.code, run.stderr + run.stdout).toBe(0);
  return run.json<{ version: number }>().version;
}

/** The files of the seed's example commands (darknet, tensor-rt, hailo, onnx segmentation). */
export async function writeSeedFiles(dir: string): Promise<void> {
  await writeFolder(dir, {
    'yolo.weights': Buffer.alloc(1024, 7),
    'yolo.cfg': '[net]\nwidth=320\nheight=320\n',
    'yolo.names': 'person\nbicycle\ncar\n',
    'newModel.bin': Buffer.alloc(2048, 1),
    'newModel.names': 'a\nb\n',
    'newHailoModel.bin': Buffer.alloc(512, 3),
    'newHailoModel.names': 'x\ny\n',
    'seg.onnx': Buffer.alloc(256, 9),
    'colors.txt': '0,0,0\n255,0,0\n',
    'keras.h5': 'HDF',
  });
}

/** A tiny ONNX model with the given input dims (identity through a Relu). */
export function onnxWithInput(dims: number[]): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('image', dims);
  g.rename(g.op('Relu', [x]), 'out');
  g.output('out', dims);
  return g.toBytes('sized');
}

export interface SeedFolder {
  /** This test's folder (a new one for each test). */
  readonly dir: string;
  modelJson(): Promise<Record<string, any>>;
}

/** A fresh temp folder holding writeSeedFiles' files for each test of the file, removed after it. */
export function useSeedFolder(): SeedFolder {
  let cleanup: (() => Promise<void>) | undefined;
  const f = {
    dir: '',
    modelJson: async () => JSON.parse(await readFile(join(f.dir, 'alwaysai.model.json'), 'utf8')),
  };
  beforeEach(async () => {
    ({ dir: f.dir, cleanup } = await tempDir('configure'));
    await writeSeedFiles(f.dir);
  });
  afterEach(() => cleanup?.());
  return f;
}
