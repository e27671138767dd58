import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { ModelVersion } from './model-version.js';
import type { BackendRegistry } from './registry.js';

/**
 * Older versions kept on disk, served on request as Triton's version policy does: a request for
 * `/versions/{v}` that is not the active version loads that version on demand (load + smoke
 * test, like an activation), keeps it while it is used, and unloads it once idle for `idleMs`.
 * Together they stay within `budgetBytes`, measured as the size of each version's folder (the
 * weights an engine holds in memory): loading one more evicts the least recently used idle
 * version first, and when the budget is taken by versions in use the request is refused with
 * RUNTIME_VERSION_BUDGET (retryable) instead of growing memory without bound.
 *
 * The active version is never here: the Runtime serves it; this only holds the others.
 */
export interface KeptVersionsOptions {
  registry: BackendRegistry;
  log: Logger;
  /** The folder of a kept version, or null when it is not on disk (the store knows). */
  resolve: (id: string, version: number) => Promise<string | null>;
  /** Bytes all on-demand versions may take together. Default 512 MiB. */
  budgetBytes?: number;
  /** A version unused for this long is unloaded. Default 60 s. */
  idleMs?: number;
}

interface Entry {
  id: string;
  version: number;
  model?: ModelVersion;
  loading?: Promise<ModelVersion>;
  bytes: number;
  refs: number;
  lastUsed: number;
}

export const DEFAULT_VERSION_BUDGET = 512 * 1024 * 1024;
export const DEFAULT_VERSION_IDLE_MS = 60_000;

export class KeptVersions {
  private readonly entries = new Map<string, Entry>();
  private readonly budget: number;
  private readonly idleMs: number;
  private timer: NodeJS.Timeout | undefined;
  private changes = 0;

  constructor(private readonly opts: KeptVersionsOptions) {
    this.budget = opts.budgetBytes ?? DEFAULT_VERSION_BUDGET;
    this.idleMs = opts.idleMs ?? DEFAULT_VERSION_IDLE_MS;
  }

  /** Changes whenever loaded() may answer differently (Runtime.generation adds it). */
  get generation(): number {
    return this.changes;
  }

  /** Versions of `id` loaded here now. */
  loaded(id: string): number[] {
    return [...this.entries.values()].filter((e) => e.id === id && e.model).map((e) => e.version);
  }

  get(id: string, version: number): ModelVersion | undefined {
    return this.entries.get(key(id, version))?.model;
  }

  /** Loads `version` of `id` (if needed) and runs fn on it holding a reference. */
  async use<T>(id: string, version: number, fn: (m: ModelVersion) => Promise<T>): Promise<T> {
    const e = await this.acquire(id, version);
    try {
      return await fn(e.model!);
    } finally {
      e.refs--;
      e.lastUsed = Date.now();
    }
  }

  /** Loads without running anything (the API's metadata routes, repository load). */
  async ensure(id: string, version: number): Promise<ModelVersion> {
    return this.use(id, version, async (m) => m);
  }

  async unload(id: string, version?: number): Promise<void> {
    for (const e of [...this.entries.values()])
      if (e.id === id && (version === undefined || e.version === version)) await this.drop(e);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.entries.values()].map((e) => this.drop(e)));
  }

  private async acquire(id: string, version: number): Promise<Entry> {
    const k = key(id, version);
    let e = this.entries.get(k);
    if (!e) {
      const dir = await this.opts.resolve(id, version);
      if (!dir)
        throw new OutpostError('RUNTIME_MODEL_NOT_LOADED', `model ${id} has no version ${version} on this device`, {
          model: id,
          version,
        });
      const bytes = await folderBytes(dir);
      await this.makeRoom(bytes, id, version);
      e = { id, version, bytes, refs: 0, lastUsed: Date.now() };
      const entry = e;
      entry.loading = this.load(id, version, dir).then(
        (m) => {
          entry.model = m;
          entry.loading = undefined;
          this.changes++;
          return m;
        },
        (err: unknown) => {
          this.entries.delete(k);
          throw err;
        },
      );
      this.entries.set(k, e);
      this.arm();
    }
    // The reference is taken before the await, so an idle sweep cannot unload it meanwhile.
    e.refs++;
    try {
      if (e.loading) await e.loading;
    } catch (err) {
      e.refs--;
      throw err;
    }
    return e;
  }

  private async load(id: string, version: number, dir: string): Promise<ModelVersion> {
    const mv = await ModelVersion.load(dir, {
      registry: this.opts.registry,
      log: this.opts.log,
      version: `${id}@${version}`,
    });
    try {
      if (mv.id !== id)
        throw new OutpostError('RUNTIME_MODEL_LOAD_FAILED', `${dir} holds model ${mv.id}, not ${id}`, { found: mv.id });
      await mv.smokeTest();
    } catch (err) {
      await mv.dispose().catch(() => undefined);
      throw err;
    }
    this.opts.log.info({ model: id, version, dir }, 'kept version loaded on demand');
    return mv;
  }

  private async makeRoom(bytes: number, id: string, version: number): Promise<void> {
    const used = () => [...this.entries.values()].reduce((a, e) => a + e.bytes, 0);
    const idle = [...this.entries.values()]
      .filter((e) => e.refs === 0 && e.model)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    while (used() + bytes > this.budget && idle.length > 0) await this.drop(idle.shift()!);
    if (used() + bytes > this.budget) {
      throw new OutpostError(
        'RUNTIME_VERSION_BUDGET',
        `loading ${id} version ${version} (${bytes} bytes) would exceed the ${this.budget}-byte budget for kept versions, which versions in use hold; retry later or use the active version`,
        { model: id, version, bytes, budget: this.budget },
      );
    }
  }

  private async drop(e: Entry): Promise<void> {
    if (this.entries.get(key(e.id, e.version)) !== e) return;
    this.entries.delete(key(e.id, e.version));
    this.changes++;
    const m = e.model ?? (await e.loading?.catch(() => undefined));
    await m?.dispose().catch((err) => this.opts.log.warn({ model: e.id, version: e.version, err }, 'dispose failed'));
    this.opts.log.info({ model: e.id, version: e.version }, 'kept version unloaded');
  }

  /** One sweep timer while anything is loaded; unref'd so it never keeps the process alive. */
  private arm(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), Math.max(10, Math.floor(this.idleMs / 2)));
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const e of [...this.entries.values()])
      if (e.refs === 0 && e.model && now - e.lastUsed >= this.idleMs) await this.drop(e);
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

function key(id: string, version: number): string {
  return `${id}@${version}`;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) total += await folderBytes(p);
    else if (ent.isFile()) total += (await stat(p)).size;
  }
  return total;
}
