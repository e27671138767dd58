import type { Principal } from '../auth/index.js';
import type { Db } from '../db/open.js';

/**
 * Who may read which model, version and blob (docs/security.md, "Who may read what"). One place
 * decides, so the blob routes, the model routes and publishing cannot disagree:
 *
 * - admin: everything.
 * - user: models it owns and public models (with all their versions and the blobs they list),
 *   plus blobs it uploaded itself (it proved it holds the bytes). Nothing else, not even whether
 *   another owner's blob exists: an invisible blob answers exactly like an absent one.
 * - device: only the model versions in its current or previous signed desired state, and the
 *   blobs those versions list. "Previous" covers a device that has not yet moved to the new
 *   state (it is mid-download, or the new version failed and it kept the old one).
 *
 * Publishing references only blobs the publisher may read, so nobody can launder another
 * owner's private blob into a public model of their own.
 */
export interface DeviceGrant {
  /** `owner/name` -> versions. */
  models: Map<string, Set<number>>;
  blobs: Set<string>;
}

export function deviceGrant(db: Db, deviceId: string): DeviceGrant {
  const grant: DeviceGrant = { models: new Map(), blobs: new Set() };
  const row = db
    .prepare('SELECT desired_doc AS cur, desired_prev_doc AS prev FROM devices WHERE id = ? AND removed_at IS NULL')
    .get(deviceId) as { cur: string | null; prev: string | null } | undefined;
  for (const doc of [row?.cur, row?.prev]) {
    if (typeof doc !== 'string') continue;
    // The cloud signed these documents itself, so they parse; a damaged one grants nothing.
    let models: { id: string; version: number; files: { sha256: string }[] }[] = [];
    try {
      models = (JSON.parse(doc) as { signed: { models: typeof models } }).signed.models;
    } catch {
      continue;
    }
    for (const m of models) {
      let versions = grant.models.get(m.id);
      if (!versions) grant.models.set(m.id, (versions = new Set()));
      versions.add(m.version);
      for (const f of m.files) grant.blobs.add(f.sha256);
    }
  }
  return grant;
}

/** Whether `p` may see model `owner/name` at all (and, with `version`, that version). */
export function canReadModel(
  db: Db,
  p: Principal,
  model: { owner: string; name: string; public: boolean },
  version?: number,
): boolean {
  if (p.kind === 'admin') return true;
  if (p.kind === 'user') return p.subject === model.owner || model.public;
  const versions = deviceGrant(db, p.subject).models.get(`${model.owner}/${model.name}`);
  return versions !== undefined && (version === undefined || versions.has(version));
}

/** Whether `p` may read the blob `sha256` (GET/HEAD), and so reference it from a new version. */
export function canReadBlob(db: Db, p: Principal, sha256: string): boolean {
  if (p.kind === 'admin') return true;
  if (p.kind === 'device') return deviceGrant(db, p.subject).blobs.has(sha256);
  const row = db
    .prepare(
      `SELECT 1 FROM blob_uploads WHERE sha256 = ? AND uploader = ?
       UNION ALL
       SELECT 1 FROM version_files vf JOIN models m ON m.id = vf.model_id
         WHERE vf.sha256 = ? AND (m.owner = ? OR m.public = 1)
       LIMIT 1`,
    )
    .get(sha256, p.subject, sha256, p.subject);
  return row !== undefined;
}

/** Records that `p` uploaded (and so holds) the blob; repeated uploads are one row. */
export function recordUpload(db: Db, p: Principal, sha256: string, size: number): void {
  db.prepare(
    'INSERT INTO blob_uploads (sha256, uploader, size, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  ).run(sha256, p.subject, size, new Date().toISOString());
}

/** The uploads of `uploader` that no published version lists: what the upload quota counts. */
export function unreferencedUploads(db: Db, uploader: string): { count: number; bytes: number } {
  const r = db
    .prepare(
      `SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM blob_uploads b
       WHERE b.uploader = ? AND NOT EXISTS (SELECT 1 FROM version_files vf WHERE vf.sha256 = b.sha256)`,
    )
    .get(uploader) as { count: number; bytes: number };
  return r;
}
