import { basename, join } from 'node:path';
import { printResult, type CliContext } from '../../../protocol/cli.js';
import { APP_JSON, defaultAppId, parseAppFileText, renderAppFile, type AppFile } from '../../../protocol/app-file.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { formatModelId, parseModelId, parseModelRef } from '../../../protocol/ids.js';
import type { CloudClient } from '../../client/cloud-client.js';
import { defineCommand, usageOnError } from '../args.js';
import { readIfExists, writeFileAtomic } from '../fs-util.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, connect } from '../target.js';

export interface LoadedApp {
  path: string;
  file: AppFile;
  /** false when the file does not exist yet (add creates it). */
  exists: boolean;
}

export async function loadApp(cwd: string, mustExist: boolean): Promise<LoadedApp> {
  const path = join(cwd, APP_JSON);
  const text = await readIfExists(path);
  if (text === undefined) {
    if (mustExist)
      throw new OutpostError(
        'APP_JSON_MISSING',
        `there is no ${APP_JSON} in ${cwd}; run this in the app folder, or add a model with \`outpost app models add\``,
        { path },
      );
    return { path, file: { models: {}, raw: {} }, exists: false };
  }
  return { path, file: parseAppFileText(text), exists: true };
}

/** `outpost.app` from the file, else `<token's user>/<folder name>` (see protocol/app-file.ts). */
export async function appIdOf(app: LoadedApp, client: CloudClient, cwd: string): Promise<string> {
  if (app.file.appId) return app.file.appId;
  const { user } = await client.whoami();
  const id = defaultAppId(user, basename(cwd));
  if (!id) {
    throw new OutpostError(
      'APP_ID_UNKNOWN',
      `cannot derive the app id from user "${user}" and folder "${basename(cwd)}"; set "outpost": {"app": "owner/name"} in ${APP_JSON}`,
      { user, folder: basename(cwd) },
    );
  }
  return id;
}

function listText(models: Record<string, number>): string {
  const ids = Object.keys(models).sort();
  return ids.length === 0 ? 'no models in this app' : ids.map((id) => `${id}  version ${models[id]}`).join('\n');
}

/** The catalog's answers for an entry it does not have. */
export const MISSING_CODES: ReadonlySet<string> = new Set(['CATALOG_MODEL_NOT_FOUND', 'CATALOG_VERSION_NOT_FOUND']);

/**
 * Catalog first, then the file: a refused PUT leaves both as they were. An alwaysai.app.json
 * from another catalog (alwaysAI's public models such as alwaysai/mobilenet_ssd) lists entries
 * this catalog lacks; those are not what the user typed, so they are left out of the catalog's
 * list, kept in the file as they were, and named in a warning, rather than failing the command.
 * Only the entry the user typed (`typed`) still fails when the catalog refuses it.
 */
async function commit(
  ctx: CliContext,
  client: CloudClient,
  app: LoadedApp,
  models: Record<string, number>,
  typed?: string,
): Promise<{ appId: string; missing: string[] }> {
  const appId = await appIdOf(app, client, ctx.cwd);
  const remote = { ...models };
  const missing: string[] = [];
  // Each refusal names one entry; at most one retry per entry of the file.
  for (;;) {
    try {
      await client.putApp(appId, remote);
      break;
    } catch (err) {
      const e = err as OutpostError;
      const other = (e.details as { id?: unknown } | undefined)?.id;
      if (
        e instanceof OutpostError &&
        MISSING_CODES.has(e.code) &&
        typeof other === 'string' &&
        other !== typed &&
        other in remote
      ) {
        missing.push(other);
        delete remote[other];
        continue;
      }
      throw err;
    }
  }
  await writeFileAtomic(app.path, renderAppFile(app.file, models));
  if (missing.length > 0) {
    ctx.stderr.write(
      `warning: ${APP_JSON} lists ${missing.map((id) => `${id} version ${models[id]}`).join(', ')}, which this catalog does not have; kept in the file, left out of ${appId}'s model list in the catalog (\`outpost app install\` cannot fetch ${missing.length === 1 ? 'it' : 'them'})\n`,
    );
  }
  return { appId, missing };
}

export const appModelsAdd = defineCommand({
  usage: `outpost app models add <owner/name>[@version] [--json]

Adds a model to ${APP_JSON} in this folder (creating the file if needed) and to the app's model
list in the catalog. Without @version the latest version is pinned.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const ref = usageOnError(() => parseModelRef(positionals[0], 'model'));
    const id = formatModelId(ref);
    const app = await loadApp(ctx.cwd, false);
    const client = await connect(values, ctx);
    const { version } = await client.getVersion(id, ref.version ?? 'latest');
    const models = { ...app.file.models, [id]: version };
    const { appId, missing } = await commit(ctx, client, app, models, id);
    printResult(
      ctx,
      json,
      { app: appId, added: { id, version }, models, missing },
      `added ${id} version ${version} to ${appId}\n${listText(models)}`,
    );
    return 0;
  },
});

export const appModelsRemove = defineCommand({
  usage: `outpost app models remove <owner/name> [--json]

Removes a model from ${APP_JSON} and from the app's model list in the catalog.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const id = formatModelId(usageOnError(() => parseModelId(positionals[0], 'model')));
    const app = await loadApp(ctx.cwd, true);
    if (!(id in app.file.models)) {
      throw new OutpostError(
        'APP_MODEL_NOT_IN_APP',
        `${id} is not in ${APP_JSON}; the app has: ${Object.keys(app.file.models).join(', ') || 'no models'}`,
        { id },
      );
    }
    const models = { ...app.file.models };
    delete models[id];
    const client = await connect(values, ctx);
    const { appId, missing } = await commit(ctx, client, app, models, id);
    printResult(
      ctx,
      json,
      { app: appId, removed: id, models, missing },
      `removed ${id} from ${appId}\n${listText(models)}`,
    );
    return 0;
  },
});

export const appModelsShow = defineCommand({
  usage: `outpost app models show [--json]

Shows the models of ${APP_JSON} in this folder (no cloud needed).

  --json             print {"models": {...}}`,
  options: {},
  async run({ json }, ctx) {
    const app = await loadApp(ctx.cwd, true);
    printResult(ctx, json, { models: app.file.models, app: app.file.appId ?? null }, listText(app.file.models));
    return 0;
  },
});

export const appModelsSync = defineCommand({
  usage: `outpost app models sync [--json]

Replaces the "models" of ${APP_JSON} with the app's model list in the catalog (other keys are
kept). Run \`outpost app install\` afterwards to download them.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const app = await loadApp(ctx.cwd, false);
    const client = await connect(values, ctx);
    const appId = await appIdOf(app, client, ctx.cwd);
    const remote = await client.getApp(appId);
    // Validate the catalog's answer like any other input before it reaches the file.
    const checked = parseAppFileText(JSON.stringify({ models: remote.models })).models;
    await writeFileAtomic(app.path, renderAppFile(app.file, checked));
    printResult(ctx, json, { app: appId, models: checked }, `synced ${appId} from the catalog\n${listText(checked)}`);
    return 0;
  },
});
