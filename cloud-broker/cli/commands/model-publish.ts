import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { printResult } from '../../../protocol/cli.js';
import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { MODEL_JSON, manifestFiles, toModelJson } from '../../../protocol/manifest.js';
import type { VersionFile } from '../../../protocol/manifest-types.js';
import { defineCommand } from '../args.js';
import { hashFile } from '../fs-util.js';
import { checkModelFiles, readModelJson } from '../model-folder.js';
import { createProgress } from '../progress.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, connect } from '../target.js';

const USAGE = `outpost model publish [--force] [--json]

Run in a model folder: validates ${MODEL_JSON} (its "id" must be your owner/name), hashes every
file it names plus ${MODEL_JSON} itself, uploads the files the cloud does not have yet, and
creates the next version. Publishing unchanged content prints the existing version unless
--force is given.

  --force            create a new version even if nothing changed
${CLOUD_FLAGS_HELP}`;

export const modelPublish = defineCommand({
  usage: USAGE,
  options: { ...CLOUD_FLAGS, force: { type: 'boolean' } },
  async run({ values, json }, ctx) {
    const { path: jsonPath, manifest } = await readModelJson(ctx.cwd);
    const abs = await checkModelFiles(ctx.cwd, manifest, (k) => `"${k}"`);
    abs.set(MODEL_JSON, jsonPath);
    const [owner, name] = manifest.id.split('/');
    const client = await connect(values, ctx);

    // The server enforces ownership; asking first saves hashing and uploading a 1 GB model.
    const me = await client.whoami();
    if (me.kind !== 'admin' && me.user !== owner) {
      throw new OutpostError(
        'AUTH_OWNER_FORBIDDEN',
        `the token belongs to "${me.user}", which may not publish to "${owner}"; set "id" in ${MODEL_JSON} to "${me.user}/${name}" or use ${owner}'s token`,
        { user: me.user, owner },
      );
    }

    const paths = [...manifestFiles(manifest), MODEL_JSON];
    const sizes = await Promise.all(paths.map(async (p) => (await stat(abs.get(p)!)).size));
    const total = sizes.reduce((a, b) => a + b, 0);
    const hashing = createProgress(ctx, json, 'hashing  ', total);
    let hashed = 0;
    const files: VersionFile[] = [];
    for (const p of paths) {
      const h = await hashFile(abs.get(p)!, (n) => hashing.update((hashed += n)));
      files.push({ path: p, sha256: h.sha256, size: h.size });
    }
    hashing.finish();

    const missing: VersionFile[] = [];
    for (const f of files) {
      if (!missing.some((m) => m.sha256 === f.sha256) && !(await client.hasBlob(f.sha256))) missing.push(f);
    }
    const upTotal = missing.reduce((a, f) => a + f.size, 0);
    const uploading = createProgress(ctx, json, 'uploading', upTotal);
    let base = 0;
    for (const f of missing) {
      const p = abs.get(f.path)!;
      if ((await stat(p)).size !== f.size) throw changed(f.path);
      try {
        await client.putBlob(
          f.sha256,
          f.size,
          createReadStream(p),
          (sent) => uploading.update(base + sent),
          ctx.signal,
        );
      } catch (err) {
        if (toOutpostError(err).code === 'BLOB_HASH_MISMATCH') throw changed(f.path);
        throw err;
      }
      base += f.size;
    }
    uploading.finish();

    const created = await client.createVersion(owner, name, {
      manifest: toModelJson(manifest),
      files,
      force: values.force === true,
    });
    const human = created.unchanged
      ? `${created.id} is unchanged: still version ${created.version} (use --force to publish a new version anyway)`
      : `published ${created.id} version ${created.version} (${files.length} files, ${missing.length} uploaded, ${upTotal} bytes)`;
    printResult(ctx, json, { ...created, files, uploaded: missing.length, uploadedBytes: upTotal }, human);
    return 0;
  },
});

function changed(path: string): OutpostError {
  return new OutpostError(
    'MODEL_FILE_CHANGED',
    `${path} changed while it was being published; wait until nothing writes to the model folder and publish again`,
    { path },
  );
}
