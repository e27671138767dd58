import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { downloadVerified } from '../../../agent/fetch/index.js';
import { printResult, type CliContext } from '../../../protocol/cli.js';
import { EXIT, OutpostError } from '../../../protocol/errors/index.js';
import { parseModelId } from '../../../protocol/ids.js';
import { parseModelPath } from '../../../protocol/manifest.js';
import type { VersionFile } from '../../../protocol/manifest-types.js';
import type { CloudClient } from '../../client/cloud-client.js';
import { defineCommand } from '../args.js';
import { fsyncDir, hashFile, writeFileAtomic } from '../fs-util.js';
import {
  MARKER,
  STAGING,
  pruneRemoved,
  readMarker,
  reuseInstalled,
  type Marker,
  type Removed,
} from '../install-folder.js';
import { createProgress, type Progress } from '../progress.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, connect } from '../target.js';
import { loadApp, MISSING_CODES } from './app-models.js';

/**
 * `outpost app install`: every model of alwaysai.app.json into `./models/<owner>/<name>/`.
 *
 * Invariants: a model folder is only ever replaced by a complete, verified one. Files are
 * downloaded into `models/.outpost-staging/<owner>/<name>@<version>/` (kept across runs, so an
 * interrupted install resumes there), then the old folder is renamed aside, the staged one
 * renamed into place, and the old one deleted. A crash between those two renames leaves the old
 * folder under `.outpost-staging/<owner>/<name>.old-*`, and the next run puts it back first.
 * A file whose content the installed version already has is linked or copied from it, not
 * downloaded again. Once every model is in place, folders of models the app no longer lists
 * (and that app install made: install-folder.ts) are removed, so ./models mirrors the app.
 */
const SHA256 = /^[0-9a-f]{64}$/;

interface Missing {
  id: string;
  version: number;
  code: string;
  message: string;
}

interface Result {
  id: string;
  version: number;
  status: 'installed' | 'unchanged';
  path: string;
  /** Bytes received over the network for this model by this run. */
  downloadedBytes: number;
  /** Some file continued from a partial download left by an interrupted run. */
  resumed: boolean;
  /** Bytes taken from the previously installed version instead of the network. */
  reusedBytes: number;
}

interface Fetched {
  bytes: number;
  resumed: boolean;
  reused: number;
}

/** The catalog's file list is input like any other: paths must stay inside the model folder. */
function checkFiles(id: string, files: unknown): VersionFile[] {
  if (!Array.isArray(files))
    throw new OutpostError('CLOUD_BAD_RESPONSE', `the catalog sent no file list for ${id}`, { id });
  return files.map((f: VersionFile) => {
    if (typeof f?.path !== 'string' || !SHA256.test(String(f.sha256)) || !Number.isSafeInteger(f.size) || f.size < 0) {
      throw new OutpostError(
        'CLOUD_BAD_RESPONSE',
        `the catalog sent a malformed file entry for ${id}: ${JSON.stringify(f)}`,
        { id },
      );
    }
    return { path: parseModelPath(f.path, `file of ${id}`), sha256: f.sha256, size: f.size };
  });
}

async function isInstalled(target: string, id: string, version: number, files: VersionFile[]): Promise<boolean> {
  const m = await readMarker(target);
  if (!m || m.id !== id || m.version !== version || JSON.stringify(m.files) !== JSON.stringify(files)) return false;
  for (const f of files) {
    const st = await stat(join(target, f.path)).catch(() => undefined);
    if (!st?.isFile() || st.size !== f.size) return false;
  }
  return true;
}

/** Puts back a folder left aside by a crash between the two renames of a replace. */
async function recoverAside(stagingOwner: string, name: string, target: string): Promise<void> {
  const entries = await readdir(stagingOwner).catch(() => [] as string[]);
  const aside = entries.filter((e) => e.startsWith(`${name}.old-`));
  const targetExists = await stat(target).then(
    () => true,
    () => false,
  );
  for (const [i, e] of aside.entries()) {
    if (!targetExists && i === 0) await rename(join(stagingOwner, e), target);
    else await rm(join(stagingOwner, e), { recursive: true, force: true });
  }
}

interface Old {
  folder: string;
  marker: Marker | undefined;
}

async function stageFile(
  client: CloudClient,
  dir: string,
  f: VersionFile,
  old: Old,
  ctx: CliContext,
  onBytes: (n: number) => void,
  fetched: Fetched,
): Promise<void> {
  const dest = join(dir, f.path);
  await mkdir(dirname(dest), { recursive: true });
  // A staged file only appears by the verified rename; a rerun still re-hashes it, cheaply.
  const st = await stat(dest).catch(() => undefined);
  if (st?.isFile() && st.size === f.size && (await hashFile(dest)).sha256 === f.sha256) {
    onBytes(f.size);
    return;
  }
  await rm(dest, { force: true });
  if (await reuseInstalled(old.folder, old.marker, f, dest)) {
    fetched.reused += f.size;
    onBytes(f.size);
    return;
  }
  let last = 0;
  const r = await downloadVerified({
    url: client.blobUrl(f.sha256),
    headers: client.authHeaders(),
    sha256: f.sha256,
    size: f.size,
    dest,
    signal: ctx.signal,
    onProgress: (done) => {
      onBytes(done - last);
      last = done;
    },
  });
  onBytes(f.size - last);
  fetched.bytes += r.bytesFetched;
  fetched.resumed ||= r.resumed;
}

async function installOne(
  client: CloudClient,
  ctx: CliContext,
  id: string,
  version: number,
  files: VersionFile[],
  progress: (n: number) => void,
): Promise<Fetched> {
  const { owner, name } = parseModelId(id);
  const models = join(ctx.cwd, 'models');
  const target = join(models, owner, name);
  const stagingOwner = join(models, STAGING, owner);
  const staged = join(stagingOwner, `${name}@${version}`);
  await mkdir(staged, { recursive: true });
  const fetched: Fetched = { bytes: 0, resumed: false, reused: 0 };
  const old: Old = { folder: target, marker: await readMarker(target) };
  for (const f of files) await stageFile(client, staged, f, old, ctx, progress, fetched);
  await writeFileAtomic(join(staged, MARKER), JSON.stringify({ id, version, files }, null, 2) + '\n');

  await mkdir(dirname(target), { recursive: true });
  const aside = join(stagingOwner, `${name}.old-${randomBytes(4).toString('hex')}`);
  const hadOld = await stat(target).then(
    () => true,
    () => false,
  );
  if (hadOld) await rename(target, aside);
  await rename(staged, target);
  await fsyncDir(dirname(target));
  if (hadOld) await rm(aside, { recursive: true, force: true });
  return fetched;
}

export const appInstall = defineCommand({
  usage: `outpost app install [--json]

Downloads every model of alwaysai.app.json into ./models/<owner>/<name>/, verifying each file's
sha256 and size. Models already installed at the right version are skipped; a changed version
replaces the folder only once the new one is complete, and files it shares with the installed
version are not downloaded again. An interrupted install resumes. Folders that app install made
for models the app no longer lists are then removed; folders it did not make are left alone.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const app = await loadApp(ctx.cwd, true);
    const ids = Object.keys(app.file.models).sort();
    const client = await connect(values, ctx);
    const plan: { id: string; version: number; files: VersionFile[]; target: string; todo: boolean }[] = [];
    const missing: Missing[] = [];
    for (const id of ids) {
      const { owner, name } = parseModelId(id);
      const target = join(ctx.cwd, 'models', owner, name);
      await recoverAside(join(ctx.cwd, 'models', STAGING, owner), name, target);
      // A model this catalog lacks (an app file from alwaysAI's public catalog) is named at the
      // end; the others still install, and the exit code says the app is incomplete.
      const d = await client.getVersion(id, app.file.models[id]).catch((err: unknown) => {
        if (err instanceof OutpostError && MISSING_CODES.has(err.code)) {
          missing.push({ id, version: app.file.models[id]!, code: err.code, message: err.message });
          return undefined;
        }
        throw err;
      });
      if (!d) continue;
      const files = checkFiles(id, d.files);
      plan.push({ id, version: d.version, files, target, todo: !(await isInstalled(target, id, d.version, files)) });
    }
    const total = plan.filter((p) => p.todo).reduce((a, p) => a + p.files.reduce((s, f) => s + f.size, 0), 0);
    const bar: Progress = createProgress(ctx, json, 'installing', total);
    let done = 0;
    const results: Result[] = [];
    for (const p of plan) {
      const f = p.todo
        ? await installOne(client, ctx, p.id, p.version, p.files, (n) => bar.update((done += n)))
        : { bytes: 0, resumed: false, reused: 0 };
      results.push({
        id: p.id,
        version: p.version,
        status: p.todo ? 'installed' : 'unchanged',
        path: p.target,
        downloadedBytes: f.bytes,
        resumed: f.resumed,
        reusedBytes: f.reused,
      });
    }
    bar.finish();
    // Only after every listed model is in place: a failed run never leaves the app with less.
    const removed: Removed[] = await pruneRemoved(join(ctx.cwd, 'models'), new Set(ids));
    await rm(join(ctx.cwd, 'models', STAGING), { recursive: true, force: true }).catch(() => undefined);
    const lines = [
      ...results.map(
        (r) =>
          `${r.status === 'installed' ? 'installed' : 'up to date'}  ${r.id} version ${r.version}  -> models/${r.id}`,
      ),
      ...removed.map((r) => `removed    ${r.id} version ${r.version} (no longer in alwaysai.app.json)`),
    ];
    const human =
      lines.length === 0
        ? 'no models in alwaysai.app.json; add one with `outpost app models add <owner/name>`'
        : lines.join('\n');
    printResult(ctx, json, { models: results, removed, missing }, human);
    if (missing.length === 0) return 0;
    ctx.stderr.write(
      `could not fetch ${missing.length} of ${ids.length} models of alwaysai.app.json (the others are installed):\n${missing
        .map((m) => `  ${m.id} version ${m.version}: ${m.code}: ${m.message}`)
        .join(
          '\n',
        )}\nRemove ${missing.length === 1 ? 'it' : 'them'} with \`outpost app models remove <owner/name>\`, or publish ${missing.length === 1 ? 'it' : 'them'} to this catalog.\n`,
    );
    return EXIT.NOT_FOUND;
  },
});
