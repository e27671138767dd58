import { chmod, mkdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId, parseVersion, type ModelId } from '../../protocol/ids.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import type { BlobPool, BlobSource } from '../fetch/pool.js';
import { fsyncDir } from '../fs/atomic-file.js';
import { hashFile } from '../fs/hash-file.js';
import { randomHex } from '../fs/lazy-crypto.js';
import { isNoSpace, linkOrCopy } from '../fetch/fs-util.js';
import { parseVersionFiles, type VersionFile } from './files.js';
import { clearJournal, readJournal, writeJournal, type InstallIntent } from './journal.js';
import { DIR_MODE, FILE_MODE, Layout } from './layout.js';

export interface StoreOptions {
  dir: string;
  /** Versions kept per model, the current one included (default 3, at least 1). */
  keep?: number;
  log?: Logger;
  /** Parallel downloads (default 3). */
  concurrency?: number;
  /** Free space that must remain after downloads (default 64 MiB). */
  marginBytes?: number;
  /** Turn off the free-disk pre-check (only to exercise a real ENOSPC in tests). */
  checkFreeSpace?: boolean;
  retries?: number;
  backoffMs?: number;
}

/** A model as the models folder holds it. */
export interface InstalledModel {
  id: string;
  /** The active version, or null when none is active (never installed, or removed). */
  current: number | null;
  /** Complete versions kept on disk (current included), for instant rollback. */
  versions: number[];
}

export interface VersionManifest {
  id: string;
  version: number;
  files: VersionFile[];
}

export type InstallPhase = 'downloading' | 'verifying' | 'installing';

export interface InstallRequest {
  id: string;
  version: number;
  /** The verified file list from the signed metadata. */
  files: VersionFile[];
  /** Where missing blobs come from. */
  source: BlobSource;
  /** Runs on the complete version folder before it becomes current; throwing keeps the old one. */
  beforeActivate?: (versionDir: string, manifest: VersionManifest) => Promise<void>;
  signal?: AbortSignal;
  onProgress?: (p: { phase: InstallPhase; done: number; total: number }) => void;
}

export interface InstallResult {
  id: string;
  version: number;
  previous: number | null;
  downloaded: number;
  reused: number;
  bytesFetched: number;
  /** Staged files hashed again (blobs reused from the cache, or copied instead of linked). */
  rehashed: number;
}

/**
 * The models folder. All mutating calls run one at a time (a promise chain), and one process
 * owns a models folder. See index.ts for the API and docs/store.md for the crash-safety argument.
 */
export class Store {
  readonly layout: Layout;
  private readonly poolOptions: ConstructorParameters<typeof BlobPool>[0];
  private poolLoaded: Promise<BlobPool> | undefined;
  private readonly keep: number;
  private readonly log: Logger;
  private chain: Promise<unknown> = Promise.resolve();
  private recovered = false;

  constructor(opts: StoreOptions) {
    if (opts.keep !== undefined && (!Number.isSafeInteger(opts.keep) || opts.keep < 1)) {
      throw new OutpostError('STORE_INVALID_ARGUMENT', `keep must be an integer >= 1, got ${opts.keep}`, {
        key: 'keep',
        value: opts.keep,
      });
    }
    this.layout = new Layout(opts.dir);
    this.keep = opts.keep ?? 3;
    this.log = moduleLogger(opts.log ?? silentLogger, 'store');
    this.poolOptions = {
      cacheDir: this.layout.blobs,
      concurrency: opts.concurrency,
      marginBytes: opts.marginBytes,
      checkFreeSpace: opts.checkFreeSpace,
      retries: opts.retries,
      backoffMs: opts.backoffMs,
      log: opts.log,
    };
  }

  /**
   * The blob cache and its downloader, imported with the first install or GC: serving what is
   * installed needs neither, so a start-up does not load the HTTP and TLS clients behind them
   * (docs/runtime.md, "Start-up").
   */
  pool(): Promise<BlobPool> {
    this.poolLoaded ??= import('../fetch/pool.js').then(({ BlobPool }) => new BlobPool(this.poolOptions));
    return this.poolLoaded;
  }

  /** Finishes or undoes whatever a crash interrupted; safe to call any time, idempotent. */
  recover(): Promise<void> {
    return this.exclusive(() => this.recoverNow());
  }

  async list(): Promise<InstalledModel[]> {
    return Promise.all(
      (await this.layout.models()).map(async (id) => {
        const mid = parseModelId(id);
        const [current, versions] = await Promise.all([this.layout.current(mid), this.layout.versions(mid)]);
        return { id, current, versions };
      }),
    );
  }

  /** The folder of the current version, or null. Apps and the runtime read models from here. */
  async currentDir(id: string): Promise<string | null> {
    const mid = parseModelId(id);
    const v = await this.layout.current(mid);
    return v === null ? null : this.layout.versionDir(mid, v);
  }

  /** The folder of a complete kept version (current or older), or null when it is not on disk. */
  async versionDir(id: string, version: number): Promise<string | null> {
    const mid = parseModelId(id);
    return (await this.layout.versions(mid)).includes(version) ? this.layout.versionDir(mid, version) : null;
  }

  async installVersion(req: InstallRequest): Promise<InstallResult> {
    // Validate before queueing: a bad path is refused before anything is written.
    const mid = parseModelId(req.id);
    const version = parseVersion(req.version);
    const files = parseVersionFiles(req.files);
    return this.exclusive(async () => {
      await this.ensureRecovered();
      return this.install(mid, version, files, req);
    });
  }

  /** Makes an installed version current (after the optional activation gate). */
  async activate(
    id: string,
    version: number,
    opts: { beforeActivate?: InstallRequest['beforeActivate'] } = {},
  ): Promise<{ previous: number | null }> {
    const mid = parseModelId(id);
    const v = parseVersion(version);
    return this.exclusive(async () => {
      await this.ensureRecovered();
      if (!(await this.layout.versions(mid)).includes(v)) {
        throw new OutpostError('STORE_NOT_INSTALLED', `${id} version ${v} is not installed; install it first`, {
          id,
          version: v,
        });
      }
      const previous = await this.layout.current(mid);
      if (opts.beforeActivate) await this.gate(opts.beforeActivate, mid, v, []);
      await this.layout.flip(mid, v);
      this.log.info({ model: id, version: v, previous }, 'activated');
      return { previous };
    });
  }

  /** Flips `current` back to the highest kept version below it. */
  async rollback(id: string): Promise<{ from: number; to: number }> {
    const mid = parseModelId(id);
    return this.exclusive(async () => {
      await this.ensureRecovered();
      const cur = await this.layout.current(mid);
      if (cur === null)
        throw new OutpostError('STORE_NOT_INSTALLED', `${id} has no current version to roll back from`, { id });
      const older = (await this.layout.versions(mid)).filter((v) => v < cur);
      if (older.length === 0)
        throw new OutpostError('STORE_NO_PREVIOUS_VERSION', `${id} has no kept version older than ${cur}`, {
          id,
          current: cur,
        });
      const to = older[older.length - 1];
      await this.layout.flip(mid, to);
      this.log.info({ model: id, from: cur, to }, 'rolled back');
      return { from: cur, to };
    });
  }

  /** Deletes a model with all its versions (one atomic rename, then the slow delete). */
  async remove(id: string): Promise<void> {
    const mid = parseModelId(id);
    return this.exclusive(async () => {
      await this.ensureRecovered();
      await this.layout.discard(this.layout.modelDir(mid));
      // The owner folder goes too when this was its last model (rmdir refuses a non-empty one).
      await rmdir(join(this.layout.dir, mid.owner)).catch(() => undefined);
      this.log.info({ model: id }, 'removed');
    });
  }

  /** Prunes versions beyond `keep`, leftovers of interrupted work and blobs nothing links to. */
  gc(): Promise<{ versions: number; blobs: number; bytes: number }> {
    return this.exclusive(async () => {
      await this.ensureRecovered();
      let versions = 0;
      for (const id of await this.layout.models()) versions += await this.prune(parseModelId(id));
      await this.layout.sweep();
      const c = await (await this.pool()).gc();
      return { versions, blobs: c.blobs, bytes: c.bytes };
    });
  }

  private async install(
    mid: ModelId,
    version: number,
    files: VersionFile[],
    req: InstallRequest,
  ): Promise<InstallResult> {
    const id = formatModelId(mid);
    const log = this.log.child({ model: id, version });
    const previous = await this.layout.current(mid);
    const target = this.layout.versionDir(mid, version);
    const preexisting = (await this.layout.versions(mid)).includes(version);
    const result: InstallResult = { id, version, previous, downloaded: 0, reused: 0, bytesFetched: 0, rehashed: 0 };
    // Idempotent: the sync loop re-applies its desired state after every restart.
    if (preexisting && previous === version) return result;
    const intent: InstallIntent = {
      v: 1,
      op: 'install',
      id,
      version,
      preexisting,
      startedAt: new Date().toISOString(),
      staging: `${mid.owner}+${mid.name}+${version}+${randomHex(4)}`,
    };
    await writeJournal(this.layout.journal, intent);
    try {
      if (!preexisting) {
        // versions/<v> of a published version is immutable: an existing one is already complete.
        const r = await (await this.pool()).ensure(files, req.source, {
          signal: req.signal,
          onProgress: (done, total) => req.onProgress?.({ phase: 'downloading', done, total }),
        });
        Object.assign(result, { downloaded: r.downloaded, reused: r.reused, bytesFetched: r.bytesFetched });
        if (req.signal?.aborted)
          throw new OutpostError('FETCH_ABORTED', `install of ${id}@${version} was cancelled`, { id, version });
        const staging = join(this.layout.staging, intent.staging);
        result.rehashed = await this.stage(staging, files, new Set(r.fetched), req, log);
        await mkdir(this.layout.versionsDir(mid), { recursive: true, mode: DIR_MODE });
        await rename(staging, target);
        await fsyncDir(dirname(target));
      }
      req.onProgress?.({ phase: 'installing', done: 0, total: 1 });
      if (req.beforeActivate) await this.gate(req.beforeActivate, mid, version, files);
      await this.layout.flip(mid, version);
      log.info({ previous, downloaded: result.downloaded, reused: result.reused }, 'installed and activated');
    } catch (err) {
      await this.undo(intent, log);
      if (err instanceof OutpostError) throw err;
      if (isNoSpace(err))
        throw new OutpostError(
          'STORE_NO_SPACE',
          `the models filesystem is full while installing ${id}@${version}; the previous version stays current`,
          { id, version },
          { cause: err },
        );
      throw new OutpostError(
        'IO_ERROR',
        `installing ${id}@${version} failed: ${(err as Error).message}; the previous version stays current`,
        { id, version },
        { cause: err },
      );
    }
    await this.prune(mid);
    await clearJournal(this.layout.journal);
    req.onProgress?.({ phase: 'installing', done: 1, total: 1 });
    return result;
  }

  /**
   * Links every blob into the staging folder and verifies each staged file against the metadata.
   * A blob in `fresh` was hashed while it streamed into the cache during this install, and the
   * staged file is a hard link to that very inode: hashing it again would read back the same
   * page-cache bytes (it cannot see a media error either), so only its size is checked. A blob
   * reused from an earlier install (it sat on disk since, and may have been damaged or replaced)
   * and a copied file (a second inode) are hashed again. Returns how many files were hashed.
   */
  private async stage(
    staging: string,
    files: VersionFile[],
    fresh: ReadonlySet<string>,
    req: InstallRequest,
    log: Logger,
  ): Promise<number> {
    await mkdir(staging, { recursive: true, mode: DIR_MODE });
    const pool = await this.pool();
    const dirs = new Set<string>([staging]);
    const total = files.reduce((n, f) => n + f.size, 0);
    let done = 0;
    let rehashed = 0;
    for (const f of files) {
      const dest = join(staging, f.path);
      dirs.add(dirname(dest));
      await mkdir(dirname(dest), { recursive: true, mode: DIR_MODE });
      const how = await linkOrCopy(pool.pathOf(f.sha256), dest);
      let actual: { sha256: string; size: number };
      if (how === 'linked' && fresh.has(f.sha256)) {
        actual = { sha256: f.sha256, size: (await stat(dest)).size };
      } else {
        actual = await hashFile(dest);
        rehashed++;
      }
      if (actual.size !== f.size || actual.sha256 !== f.sha256) {
        // The cached blob itself is bad (disk corruption or tampering): drop it so the next sync refetches.
        await unlink(pool.pathOf(f.sha256)).catch(() => undefined);
        throw new OutpostError(
          'STORE_FILE_MISMATCH',
          `staged ${f.path} has ${actual.size} bytes, sha256 ${actual.sha256}; the signed metadata says ${f.size} bytes, ${f.sha256}`,
          { path: f.path, expected: f.sha256, actual: actual.sha256 },
        );
      }
      await chmod(dest, FILE_MODE);
      done += f.size;
      req.onProgress?.({ phase: 'verifying', done, total });
      if (req.signal?.aborted)
        throw new OutpostError('FETCH_ABORTED', `install was cancelled while verifying ${f.path}`, { path: f.path });
    }
    // New directory entries must be durable before the rename publishes the folder.
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) await fsyncDir(d);
    log.debug({ files: files.length, rehashed }, 'staged and verified');
    return rehashed;
  }

  private async gate(
    hook: NonNullable<InstallRequest['beforeActivate']>,
    mid: ModelId,
    version: number,
    files: VersionFile[],
  ): Promise<void> {
    try {
      await hook(this.layout.versionDir(mid, version), { id: formatModelId(mid), version, files });
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      const e = toOutpostError(err);
      throw new OutpostError(
        'STORE_ACTIVATION_FAILED',
        `activation check of ${formatModelId(mid)}@${version} failed: ${e.message}; the previous version stays current`,
        { id: formatModelId(mid), version, cause: e.message },
        { cause: err },
      );
    }
  }

  /** Takes back an install that did not flip, then forgets it. */
  private async undo(intent: InstallIntent, log: Logger): Promise<void> {
    const mid = parseModelId(intent.id);
    await this.layout.discard(join(this.layout.staging, intent.staging));
    if (!intent.preexisting && (await this.layout.current(mid)) !== intent.version) {
      await this.layout.discard(this.layout.versionDir(mid, intent.version));
      log.info('install undone');
    }
    await clearJournal(this.layout.journal);
  }

  /** Keeps `current` and the (keep - 1) highest other versions; discards the rest. */
  private async prune(mid: ModelId): Promise<number> {
    const cur = await this.layout.current(mid);
    const others = (await this.layout.versions(mid)).filter((v) => v !== cur).sort((a, b) => b - a);
    const drop = others.slice(Math.max(0, this.keep - (cur === null ? 0 : 1)));
    for (const v of drop) await this.layout.discard(this.layout.versionDir(mid, v));
    if (drop.length) this.log.info({ model: formatModelId(mid), dropped: drop }, 'old versions pruned');
    return drop.length;
  }

  private async recoverNow(): Promise<void> {
    await this.layout.init();
    const intent = await readJournal(this.layout.journal, this.log);
    if (intent) {
      const mid = parseModelId(intent.id);
      if ((await this.layout.current(mid)) === intent.version) {
        // The flip happened: the install is complete; only the pruning may be missing.
        this.log.info({ model: intent.id, version: intent.version }, 'recover: finishing an interrupted install');
        await this.prune(mid);
        await clearJournal(this.layout.journal);
      } else {
        this.log.info({ model: intent.id, version: intent.version }, 'recover: undoing an interrupted install');
        await this.undo(intent, this.log);
      }
    }
    await this.layout.sweep();
    this.recovered = true;
  }

  private async ensureRecovered(): Promise<void> {
    if (!this.recovered) await this.recoverNow();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
