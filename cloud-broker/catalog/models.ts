import { OutpostError } from '../../protocol/errors/index.js';
import type { VersionFile } from '../../protocol/manifest-types.js';
import type { Principal } from '../auth/index.js';
import type { CreatedVersion, ModelDetail, ModelSummary, VersionDetail, VersionSummary } from '../client/types.js';
import type { Db } from '../db/open.js';
import { canReadModel } from './access.js';
import { canonicalJson, sha256Hex } from './canonical.js';
import type { VersionBody } from './parse-version-body.js';

interface ModelRow {
  id: number;
  owner: string;
  name: string;
  public: number;
  updated_at: string;
  latest: number | null;
}

const MODEL_COLUMNS = `m.id, m.owner, m.name, m.public, m.updated_at,
  (SELECT MAX(version) FROM versions v WHERE v.model_id = m.id) AS latest`;

/** The digest that decides "unchanged": sha256 of canonical {manifest, files sorted by path}. */
export function versionDigest(manifest: Record<string, unknown>, files: VersionFile[]): string {
  return sha256Hex(canonicalJson({ manifest, files }));
}

/**
 * Creates the next version of `owner/name` (and the model at its first version) in one
 * transaction, so concurrent publishes get distinct consecutive numbers. Blobs must already
 * have been checked by the caller. Returns `unchanged` instead when the content equals the latest
 * version and `force` is false.
 */
export function createVersion(
  db: Db,
  owner: string,
  name: string,
  body: VersionBody,
  publishedBy: string | null = null,
): CreatedVersion {
  const id = `${owner}/${name}`;
  const digest = versionDigest(body.manifest, body.files);
  const isPublic = body.manifest.public === true ? 1 : 0;
  return db
    .transaction((): CreatedVersion => {
      const now = new Date().toISOString();
      let model = db.prepare('SELECT id FROM models WHERE owner = ? AND name = ?').get(owner, name) as
        | { id: number }
        | undefined;
      if (!model) {
        model = db
          .prepare(
            'INSERT INTO models (owner, name, public, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id',
          )
          .get(owner, name, isPublic, now, now) as { id: number };
      }
      const latest = db
        .prepare('SELECT version, digest FROM versions WHERE model_id = ? ORDER BY version DESC LIMIT 1')
        .get(model.id) as { version: number; digest: string } | undefined;
      if (latest && latest.digest === digest && !body.force) return { id, version: latest.version, unchanged: true };
      const version = (latest?.version ?? 0) + 1;
      db.prepare(
        'INSERT INTO versions (model_id, version, manifest, digest, created_at, published_by) VALUES (?, ?, ?, ?, ?, ?)',
      ).run(model.id, version, JSON.stringify(body.manifest), digest, now, publishedBy);
      const insertFile = db.prepare(
        'INSERT INTO version_files (model_id, version, path, sha256, size) VALUES (?, ?, ?, ?, ?)',
      );
      for (const f of body.files) insertFile.run(model.id, version, f.path, f.sha256, f.size);
      // The visibility follows the newest manifest; the model row is the only mutable part.
      db.prepare('UPDATE models SET public = ?, updated_at = ? WHERE id = ?').run(isPublic, now, model.id);
      return { id, version };
    })
    .immediate();
}

function summary(r: ModelRow): ModelSummary {
  return {
    id: `${r.owner}/${r.name}`,
    owner: r.owner,
    name: r.name,
    public: r.public === 1,
    latest: r.latest ?? 0,
    updatedAt: r.updated_at,
  };
}

const visible = (db: Db, p: Principal, r: ModelRow, version?: number): boolean =>
  canReadModel(db, p, { owner: r.owner, name: r.name, public: r.public === 1 }, version);

/** Models the principal may see (catalog/access.ts): own and public ones, or a device's deployed ones. */
export function listModels(db: Db, p: Principal): ModelSummary[] {
  const rows = db.prepare(`SELECT ${MODEL_COLUMNS} FROM models m ORDER BY m.owner, m.name`).all() as ModelRow[];
  return rows.filter((r) => visible(db, p, r)).map(summary);
}

/** The model row if it exists and is visible; an invisible model is "not found", like an absent one. */
function findModel(db: Db, p: Principal, owner: string, name: string): ModelRow {
  const r = db.prepare(`SELECT ${MODEL_COLUMNS} FROM models m WHERE m.owner = ? AND m.name = ?`).get(owner, name) as
    | ModelRow
    | undefined;
  if (!r || !visible(db, p, r)) {
    throw new OutpostError(
      'CATALOG_MODEL_NOT_FOUND',
      `no model "${owner}/${name}" is visible to you; check the id with \`outpost model list\``,
      { id: `${owner}/${name}` },
    );
  }
  return r;
}

export function getModel(db: Db, p: Principal, owner: string, name: string): ModelDetail {
  const r = findModel(db, p, owner, name);
  const versions = (
    db.prepare('SELECT version, created_at, digest FROM versions WHERE model_id = ? ORDER BY version').all(r.id) as {
      version: number;
      created_at: string;
      digest: string;
    }[]
  ).map((v): VersionSummary => ({ version: v.version, createdAt: v.created_at, digest: v.digest }));
  const latest = db
    .prepare('SELECT manifest FROM versions WHERE model_id = ? ORDER BY version DESC LIMIT 1')
    .get(r.id) as { manifest: string } | undefined;
  return { ...summary(r), versions, manifest: latest ? (JSON.parse(latest.manifest) as Record<string, unknown>) : {} };
}

export function getVersion(
  db: Db,
  p: Principal,
  owner: string,
  name: string,
  version: number | 'latest',
): VersionDetail {
  const r = findModel(db, p, owner, name);
  const v = version === 'latest' ? r.latest : version;
  const row =
    v === null
      ? undefined
      : (db
          .prepare('SELECT version, manifest, digest, created_at FROM versions WHERE model_id = ? AND version = ?')
          .get(r.id, v) as { version: number; manifest: string; digest: string; created_at: string } | undefined);
  if (!row || !visible(db, p, r, row.version)) {
    throw new OutpostError(
      'CATALOG_VERSION_NOT_FOUND',
      `model "${owner}/${name}" has no version ${version} (latest is ${r.latest ?? 'none'}); see \`outpost model versions ${owner}/${name}\``,
      { id: `${owner}/${name}`, version, latest: r.latest },
    );
  }
  const files = db
    .prepare('SELECT path, sha256, size FROM version_files WHERE model_id = ? AND version = ? ORDER BY path')
    .all(r.id, row.version) as VersionFile[];
  return {
    id: `${owner}/${name}`,
    version: row.version,
    manifest: JSON.parse(row.manifest) as Record<string, unknown>,
    files,
    createdAt: row.created_at,
    digest: row.digest,
  };
}
