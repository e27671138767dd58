import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId, parseVersion } from '../../protocol/ids.js';
import { canRead, type Principal } from '../auth/index.js';
import type { AppDetail, AppModels } from '../client/types.js';
import type { Db } from '../db/open.js';
import { getVersion } from './models.js';

const MAX_APP_MODELS = 1000;

/** Validates `{models: {"owner/name": version}}`, keeping ids in their canonical form. */
export function parseAppBody(body: unknown): AppModels {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new OutpostError('BAD_REQUEST', 'the body must be {"models": {"owner/name": version}}', { key: 'body' });
  const models = (body as Record<string, unknown>).models;
  if (models === null || typeof models !== 'object' || Array.isArray(models)) {
    throw new OutpostError('BAD_REQUEST', 'models must be an object {"owner/name": version}', { key: 'models' });
  }
  const entries = Object.entries(models as Record<string, unknown>);
  if (entries.length > MAX_APP_MODELS)
    throw new OutpostError('BAD_REQUEST', `an app may list at most ${MAX_APP_MODELS} models`, { key: 'models' });
  const out: AppModels = {};
  for (const [k, v] of entries)
    out[formatModelId(parseModelId(k, `models key "${k}"`))] = parseVersion(v, `models["${k}"]`);
  return out;
}

/** Apps have no public flag: users read only their own; the admin reads all; devices none. */
export function getApp(db: Db, p: Principal, owner: string, app: string): AppDetail {
  const row = canRead(p, owner, false)
    ? (db.prepare('SELECT models, updated_at FROM apps WHERE owner = ? AND app = ?').get(owner, app) as
        | { models: string; updated_at: string }
        | undefined)
    : undefined;
  if (!row)
    throw new OutpostError(
      'CATALOG_APP_NOT_FOUND',
      `the catalog has no model list for app "${owner}/${app}"; add a model with \`outpost app models add\``,
      { id: `${owner}/${app}` },
    );
  return { id: `${owner}/${app}`, models: JSON.parse(row.models) as AppModels, updatedAt: row.updated_at };
}

/** Replaces the app's model list; every listed version must exist and be visible to the writer. */
export function putApp(db: Db, p: Principal, owner: string, app: string, models: AppModels): AppDetail {
  return db
    .transaction((): AppDetail => {
      for (const [id, version] of Object.entries(models)) {
        const { owner: o, name } = parseModelId(id);
        getVersion(db, p, o, name, version); // throws CATALOG_MODEL_NOT_FOUND / CATALOG_VERSION_NOT_FOUND
      }
      const now = new Date().toISOString();
      db.prepare(
        'INSERT INTO apps (owner, app, models, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner, app) DO UPDATE SET models = excluded.models, updated_at = excluded.updated_at',
      ).run(owner, app, JSON.stringify(models), now);
      return { id: `${owner}/${app}`, models, updatedAt: now };
    })
    .immediate();
}
