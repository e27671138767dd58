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

/** Catalog first, then the file: a refused PUT leaves both as they were. */
async function commit(
  ctx: CliContext,
  client: CloudClient,
  app: LoadedApp,
  models: Record<string, number>,
): Promise<string> {
  const appId = await appIdOf(app, client, ctx.cwd);
  try {
    await client.putApp(appId, models);
  } catch (err) {
    // The catalog checks the whole list: name the file as the source of an entry the user did
    // not type in this command, or the message reads as if the model they typed were missing.
    const e = err as OutpostError;
    const other = (e.details as { id?: unknown } | undefined)?.id;
    if (
      e instanceof OutpostError &&
      (e.code === 'CATALOG_MODEL_NOT_FOUND' || e.code === 'CATALOG_VERSION_NOT_FOUND') &&
      typeof other === 'string' &&
      other in app.file.models
    ) {
      throw new OutpostError(
        e.code,
        `${APP_JSON} lists ${other} version ${app.file.models[other]}, which the catalog refuses: ${e.message}; remove it with \`outpost app models remove ${other}\` or use a token that can see it`,
        e.details,
      );
    }
    throw err;
  }
  await writeFileAtomic(app.path, renderAppFile(app.file, models));
  return appId;
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
    const appId = await commit(ctx, client, app, models);
    printResult(
      ctx,
      json,
      { app: appId, added: { id, version }, models },
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
    const appId = await commit(ctx, client, app, models);
    printResult(ctx, json, { app: appId, removed: id, models }, `removed ${id} from ${appId}\n${listText(models)}`);
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
