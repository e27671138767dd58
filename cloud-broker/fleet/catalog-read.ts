import type { DesiredModel } from '../../protocol/desired-state.js';
import {
  FRAMEWORKS,
  PURPOSES,
  type Framework,
  type Purpose,
  type TrtDevice,
  type Architecture,
} from '../../protocol/manifest-types.js';
import type { Db } from '../db/open.js';

/**
 * Read-only queries on the catalog's tables (cloud-broker/db/migrations-catalog.ts), kept here so
 * the fleet depends on the schema in one place. Published versions are immutable, so what this
 * returns for (model, version) never changes and may be cached.
 */
function split(model: string): [string, string] {
  const i = model.indexOf('/');
  return [model.slice(0, i), model.slice(i + 1)];
}

export function latestVersion(db: Db, model: string): number | null {
  const [owner, name] = split(model);
  const r = db
    .prepare(
      'SELECT MAX(v.version) AS v FROM versions v JOIN models m ON m.id = v.model_id WHERE m.owner = ? AND m.name = ?',
    )
    .get(owner, name) as { v: number | null } | undefined;
  return r?.v ?? null;
}

export function versionExists(db: Db, model: string, version: number): boolean {
  const [owner, name] = split(model);
  return (
    db
      .prepare(
        'SELECT 1 FROM versions v JOIN models m ON m.id = v.model_id WHERE m.owner = ? AND m.name = ? AND v.version = ?',
      )
      .get(owner, name, version) !== undefined
  );
}

/** The app's model list `{"owner/name": version}`, or null when the app is not in the catalog. */
export function appModels(db: Db, app: string): Record<string, number> | null {
  const [owner, name] = split(app);
  const r = db.prepare('SELECT models FROM apps WHERE owner = ? AND app = ?').get(owner, name) as
    | { models: string }
    | undefined;
  return r ? (JSON.parse(r.models) as Record<string, number>) : null;
}

function param(manifest: Record<string, unknown>, key: string): unknown {
  const p = manifest.model_parameters;
  if (p && typeof p === 'object' && key in (p as object)) return (p as Record<string, unknown>)[key];
  return manifest[key];
}

/**
 * The desired-state entry of one published version: framework, purpose, the tensor-rt/hailo
 * target fields from its manifest, and every file with its hash and size.
 */
export function desiredModelOf(db: Db, model: string, version: number): Omit<DesiredModel, 'blobBase'> | null {
  const [owner, name] = split(model);
  const v = db
    .prepare(
      'SELECT v.model_id AS mid, v.manifest FROM versions v JOIN models m ON m.id = v.model_id WHERE m.owner = ? AND m.name = ? AND v.version = ?',
    )
    .get(owner, name, version) as { mid: number; manifest: string } | undefined;
  if (!v) return null;
  const manifest = JSON.parse(v.manifest) as Record<string, unknown>;
  const files = db
    .prepare('SELECT path, sha256, size FROM version_files WHERE model_id = ? AND version = ? ORDER BY path')
    .all(v.mid, version) as { path: string; sha256: string; size: number }[];
  const framework = param(manifest, 'framework_type');
  const purpose = param(manifest, 'purpose');
  const out: Omit<DesiredModel, 'blobBase'> = {
    id: model,
    version,
    // The catalog validated the manifest at publish time; these fallbacks only guard old rows.
    framework: (FRAMEWORKS.includes(framework as Framework) ? framework : 'onnx') as Framework,
    purpose: (PURPOSES.includes(purpose as Purpose) ? purpose : 'Classification') as Purpose,
    files,
  };
  const device = param(manifest, 'device');
  const architecture = param(manifest, 'architecture');
  if (typeof device === 'string' && framework === 'tensor-rt') out.device = device as TrtDevice;
  if (typeof architecture === 'string' && (framework === 'tensor-rt' || framework === 'hailo'))
    out.architecture = architecture as Architecture;
  return out;
}
