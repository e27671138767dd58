import { canRead, type Principal } from '../auth/index.js';
import type { Db } from '../db/open.js';
import type { Fleet } from './fleet.js';

export interface VersionView {
  version: number;
  createdAt: string;
  /** The token identity that published it (null for versions published before this was recorded). */
  publishedBy: string | null;
  files: { path: string; size: number }[];
  size: number;
  /** Devices whose report says this version is active: how many, and the first few ids. */
  running: { count: number; devices: string[] };
}

export interface ModelView {
  id: string;
  public: boolean;
  latest: number;
  framework: string | null;
  versions: VersionView[];
}

/** How many device ids one version lists; `running.count` always has the full number. */
export const RUNNING_IDS = 10;

/**
 * The models page: every model the principal may read with each version's files, size, publisher
 * and the devices running it. Which devices run what comes from the devices' reports only (the
 * admin's view; a user token sees the catalog part, with no device ids).
 */
export function modelsView(db: Db, p: Principal, fleet: Fleet | null): ModelView[] {
  const models = db.prepare('SELECT id, owner, name, public FROM models ORDER BY owner, name').all() as {
    id: number;
    owner: string;
    name: string;
    public: number;
  }[];
  const visible = models.filter((m) => canRead(p, m.owner, m.public === 1));
  const versions = db
    .prepare(
      'SELECT model_id, version, created_at, published_by, manifest FROM versions ORDER BY model_id, version DESC',
    )
    .all() as {
    model_id: number;
    version: number;
    created_at: string;
    published_by: string | null;
    manifest: string;
  }[];
  const files = db.prepare('SELECT model_id, version, path, size FROM version_files ORDER BY path').all() as {
    model_id: number;
    version: number;
    path: string;
    size: number;
  }[];
  const filesOf = new Map<string, { path: string; size: number }[]>();
  for (const f of files) {
    const k = `${f.model_id}@${f.version}`;
    if (!filesOf.has(k)) filesOf.set(k, []);
    filesOf.get(k)!.push({ path: f.path, size: f.size });
  }
  const running = p.kind === 'admin' && fleet ? runningVersions(fleet) : new Map<string, string[]>();
  return visible.map((m) => {
    const id = `${m.owner}/${m.name}`;
    const vs = versions.filter((v) => v.model_id === m.id);
    const params = vs[0]
      ? (JSON.parse(vs[0].manifest) as { model_parameters?: { framework_type?: unknown } }).model_parameters
      : undefined;
    const framework = params?.framework_type;
    return {
      id,
      public: m.public === 1,
      latest: vs[0]?.version ?? 0,
      framework: typeof framework === 'string' ? framework : null,
      versions: vs.map((v) => {
        const fs = filesOf.get(`${m.id}@${v.version}`) ?? [];
        const on = running.get(`${id}@${v.version}`) ?? [];
        return {
          version: v.version,
          createdAt: v.created_at,
          publishedBy: v.published_by,
          files: fs,
          size: fs.reduce((n, f) => n + f.size, 0),
          running: { count: on.length, devices: on.slice(0, RUNNING_IDS) },
        };
      }),
    };
  });
}

/** `owner/name@version` -> ids of the devices that report it active. */
function runningVersions(fleet: Fleet): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { device: d, reported } of fleet.devicesWithState()) {
    for (const m of reported?.models ?? []) {
      if (m.activeVersion === null) continue;
      const k = `${m.id}@${m.activeVersion}`;
      if (!out.has(k)) out.set(k, []);
      out.get(k)!.push(d.id);
    }
  }
  return out;
}
