import { OutpostError } from './errors/index.js';
import { isModelIdPart, parseModelId } from './ids.js';

/**
 * `alwaysai.app.json`: `{"models": {"owner/name": version}, ...}`. Only `models` (and the
 * optional `outpost.app` catalog id) are interpreted; every other key is kept byte-for-value as
 * it was, so the file round-trips through `outpost app models add/remove/sync`.
 *
 * The app's catalog id (where its model list lives in the cloud, `PUT /v1/apps/:owner/:app`) is
 * `"outpost": {"app": "owner/app"}` when set, otherwise `<user of the token>/<folder name>`.
 */
export const APP_JSON = 'alwaysai.app.json';

export interface AppFile {
  models: Record<string, number>;
  /** `outpost.app` when the file sets it. */
  appId?: string;
  /** The whole parsed object, unknown keys included; `models` is replaced on write. */
  raw: Record<string, unknown>;
}

function invalid(message: string, details: Record<string, unknown>): OutpostError {
  return new OutpostError('APP_JSON_INVALID', message, details);
}

/** Parses the text of alwaysai.app.json (JSON syntax errors included). */
export function parseAppFileText(text: string): AppFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalid(`${APP_JSON} is not valid JSON (${(err as Error).message}); fix the file`, {});
  }
  return parseAppFile(value);
}

export function parseAppFile(value: unknown): AppFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${APP_JSON} must hold one JSON object`, { value });
  }
  const raw = value as Record<string, unknown>;
  const models: Record<string, number> = {};
  if (raw.models !== undefined && raw.models !== null) {
    if (typeof raw.models !== 'object' || Array.isArray(raw.models)) {
      throw invalid(`"models" in ${APP_JSON} must be an object {"owner/name": version}`, { key: 'models' });
    }
    for (const [id, v] of Object.entries(raw.models as Record<string, unknown>)) {
      try {
        parseModelId(id);
      } catch {
        throw invalid(`"models" key ${JSON.stringify(id)} in ${APP_JSON} is not "owner/name"`, { key: `models.${id}` });
      }
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
        throw invalid(`"models"."${id}" in ${APP_JSON} is ${JSON.stringify(v)}; expected a version number >= 1`, {
          key: `models.${id}`,
          value: v,
        });
      }
      models[id] = v;
    }
  }
  let appId: string | undefined;
  const o = raw.outpost;
  if (o !== undefined) {
    const app = typeof o === 'object' && o !== null ? (o as Record<string, unknown>).app : undefined;
    if (app !== undefined) {
      try {
        parseModelId(app, 'outpost.app');
      } catch {
        throw invalid(`"outpost"."app" in ${APP_JSON} is ${JSON.stringify(app)}; expected "owner/app"`, {
          key: 'outpost.app',
          value: app,
        });
      }
      appId = app as string;
    }
  }
  return { models, appId, raw };
}

/** The file's text with `models` replaced, other keys kept in their order; sorted model ids. */
export function renderAppFile(file: AppFile, models: Record<string, number>): string {
  const sorted: Record<string, number> = {};
  for (const id of Object.keys(models).sort()) sorted[id] = models[id];
  const out = 'models' in file.raw ? { ...file.raw, models: sorted } : { models: sorted, ...file.raw };
  return JSON.stringify(out, null, 2) + '\n';
}

/** `<user>/<folder>` when the folder name is a valid id part, otherwise undefined. */
export function defaultAppId(user: string, folderName: string): string | undefined {
  return isModelIdPart(user) && isModelIdPart(folderName) ? `${user}/${folderName}` : undefined;
}
