import { EventEmitter } from 'node:events';
import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import type { ModelManifest } from '../../protocol/manifest-types.js';
import type { BatchStats, ModelHealth, Tensor } from './backend.js';
import { KeptVersions, type KeptVersionsOptions } from './kept-versions.js';
import { ModelVersion, type InferOutput, type Serving } from './model-version.js';
import type { PostOptions, PredictResult } from './postprocess/index.js';
import type { RawFrame } from './preprocess.js';
import type { BackendCapability, ReportedModel } from '../../protocol/reported-state.js';
import { BackendRegistry } from './registry.js';

/**
 * The runtime the agent serves models from: one active version per model, switched without
 * failing a request.
 *
 *   const rt = new Runtime({ log, registry? })
 *   await rt.activate(id, version, dir)         load + smoke-test, then swap atomically
 *   rt.beforeActivate                           (dir, manifest) => Promise<void>: the store's activation gate
 *   await rt.infer(id, tensors, {version?})     -> { outputs, duration, version }
 *   await rt.predict(id, image|frame, opts)     -> typed result + version
 *   rt.list() / rt.get(id)                      what is served (id, version, backend, inputs...)
 *   rt.generation                               changes whenever list() would (see below)
 *   await rt.unload(id) / await rt.close()
 *   await rt.capabilities()                     every backend with availability and reason
 *   rt.events.on('activated'|'unloaded'|'failed'|'health', ...)
 *
 * Invariants: a request takes a reference on the version that was active when it started and
 * keeps it to the end, even if another version becomes active meanwhile; a replaced version is
 * disposed when its last reference is released, never earlier; a failed load or smoke test
 * leaves the active version untouched. Activations of the same model are serialised.
 */
export interface ServedModel {
  id: string;
  version: number;
  dir: string;
  backend: string;
  purpose: string;
  inputs: ModelVersion['inputs'];
  outputs: ModelVersion['outputs'];
  labels: string[];
  inFlight: number;
  /** Typed results (with the layouts chosen) or raw tensors only (with the reason). */
  serving?: Serving;
  /** Present when the backend can no longer run this version (RUNTIME_WORKER_UNHEALTHY and what to do). */
  health?: ModelHealth;
  /** Present when the version batches waiting requests (dynamic_batching): runs per batch size. */
  batches?: BatchStats;
}

export interface RuntimeEvents {
  activated: [{ id: string; version: number; previous?: number; backend: string }];
  unloaded: [{ id: string; version: number }];
  failed: [{ id: string; version: number; code: string; message: string }];
  /** The active version's health changed (see ServedModel.health). */
  health: [{ id: string; version: number; health?: ModelHealth }];
}

class Slot {
  refs = 0;
  retired = false;
  constructor(
    readonly version: number,
    readonly model: ModelVersion,
  ) {}
}

export class Runtime {
  readonly registry: BackendRegistry;
  readonly events = new EventEmitter<RuntimeEvents>();
  private readonly log: Logger;
  private readonly active = new Map<string, Slot>();
  private readonly activating = new Map<string, Promise<unknown>>();
  private readonly prepared = new Map<string, { version: number; model: ModelVersion }>();
  private changes = 0;

  /** Older versions served on demand (`/versions/{v}`); absent unless `versions` is given. */
  readonly kept: KeptVersions | undefined;

  constructor(
    opts: {
      log?: Logger;
      registry?: BackendRegistry;
      versions?: Omit<KeptVersionsOptions, 'registry' | 'log'>;
    } = {},
  ) {
    this.log = moduleLogger(opts.log ?? silentLogger, 'runtime');
    this.registry = opts.registry ?? new BackendRegistry({ log: opts.log });
    this.kept = opts.versions
      ? new KeptVersions({ ...opts.versions, registry: this.registry, log: this.log })
      : undefined;
  }

  /** The store's beforeActivate hook: load and smoke-test a staged version, then let it go. */
  readonly beforeActivate = async (dir: string, _manifest?: ModelManifest): Promise<void> => {
    const mv = await ModelVersion.load(dir, { registry: this.registry, log: this.log });
    try {
      await mv.smokeTest();
    } finally {
      await mv.dispose();
    }
  };

  /**
   * Like beforeActivate, but keeps the loaded, smoke-tested instance for the activate(id, version)
   * that follows, so an install loads a model once instead of twice. Engines hold the model in
   * memory once loaded, so the store renaming the staging folder afterwards does not matter. At
   * most one prepared instance per model is kept; a newer one replaces (and disposes) it.
   */
  async prepare(id: string, version: number, dir: string): Promise<void> {
    const mv = await ModelVersion.load(dir, { registry: this.registry, log: this.log, version: `${id}@${version}` });
    try {
      if (mv.id !== id)
        throw new OutpostError('RUNTIME_MODEL_LOAD_FAILED', `${dir} holds model ${mv.id}, not ${id}`, {
          expected: id,
          found: mv.id,
        });
      await mv.smokeTest();
    } catch (err) {
      await mv.dispose().catch(() => undefined);
      throw err;
    }
    await this.dropPrepared(id);
    this.prepared.set(id, { version, model: mv });
  }

  /** Loads, smoke-tests and serves `dir` as `version` of `id`; the previous version retires. */
  async activate(id: string, version: number, dir: string, opts: { backend?: string } = {}): Promise<void> {
    const prev = this.activating.get(id) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.doActivate(id, version, dir, opts));
    this.activating.set(id, run);
    try {
      await run;
    } finally {
      if (this.activating.get(id) === run) this.activating.delete(id);
    }
  }

  private async doActivate(id: string, version: number, dir: string, opts: { backend?: string }): Promise<void> {
    let mv: ModelVersion | undefined;
    const ready = this.prepared.get(id);
    if (ready && ready.version === version && opts.backend === undefined) {
      this.prepared.delete(id);
      mv = ready.model;
      mv.relocate(dir);
    }
    try {
      mv ??= await ModelVersion.load(dir, {
        registry: this.registry,
        log: this.log,
        backend: opts.backend,
        version: `${id}@${version}`,
      });
      if (mv.id !== id)
        throw new OutpostError('RUNTIME_MODEL_LOAD_FAILED', `${dir} holds model ${mv.id}, not ${id}`, {
          expected: id,
          found: mv.id,
        });
      if (mv !== ready?.model) await mv.smokeTest();
    } catch (err) {
      await mv?.dispose().catch(() => undefined);
      const e = toOutpostError(err);
      this.events.emit('failed', { id, version, code: e.code, message: e.message });
      this.log.warn({ model: id, version, err: e }, 'activation failed; the previous version stays active');
      throw e;
    }
    const old = this.active.get(id);
    const slot = new Slot(version, mv);
    mv.onHealthChange(() => {
      if (this.active.get(id) !== slot) return;
      this.changes++;
      const health = mv.health;
      this.log.warn({ model: id, version, health }, 'health changed');
      this.events.emit('health', { id, version, ...(health ? { health } : {}) });
    });
    this.active.set(id, slot);
    this.changes++;
    this.events.emit('activated', { id, version, previous: old?.version, backend: mv.backend });
    this.log.info({ model: id, version, previous: old?.version, backend: mv.backend }, 'activated');
    if (old) this.retire(id, old);
  }

  async infer(
    id: string,
    inputs: Record<string, Tensor>,
    opts: { version?: number } = {},
  ): Promise<InferOutput & { version: number }> {
    return this.withModel(id, opts.version, async (m, version) => ({ ...(await m.infer(inputs)), version }));
  }

  async predict(
    id: string,
    image: Uint8Array | RawFrame,
    opts: PostOptions & { version?: number } = {},
  ): Promise<PredictResult & { model: string; version: number }> {
    return this.withModel(id, opts.version, async (m, version) => ({
      ...(await m.predict(image, opts)),
      model: id,
      version,
    }));
  }

  /** The active version, or with `version` a kept version loaded now (not loading it). */
  get(id: string, version?: number): ServedModel | undefined {
    const s = this.active.get(id);
    if (!s) return undefined;
    const kept = version !== undefined && version !== s.version ? this.kept?.get(id, version) : undefined;
    if (version !== undefined && version !== s.version && !kept) return undefined;
    const m = kept ?? s.model;
    return {
      id,
      version: kept ? version! : s.version,
      dir: m.dir,
      backend: m.backend,
      purpose: m.params.purpose,
      inputs: m.inputs,
      outputs: m.outputs,
      labels: m.labels,
      inFlight: kept ? 0 : s.refs,
      serving: m.serving,
      ...(m.health ? { health: m.health } : {}),
      ...(m.batches ? { batches: m.batches } : {}),
    };
  }

  /**
   * What the reported state says of the active version besides `active`: unhealthy (its backend
   * gave up on it) before raw-tensors-only; undefined when it serves typed results.
   */
  reportedServing(id: string): ReportedModel['serving'] | undefined {
    const served = this.get(id);
    if (served?.health) return { mode: 'unhealthy', reason: served.health };
    const serving = served?.serving;
    return serving?.mode === 'raw-tensors' ? { mode: 'raw-tensors', reason: serving.reason } : undefined;
  }

  /**
   * A number that changes whenever what list() returns may have changed: a version activated or
   * unloaded, the active version's health, a kept version loaded or unloaded. It is read on every
   * request by the API's name index (agent/api/runtime-adapter.ts), which rebuilds only when it
   * moved, instead of listing and sorting every model to resolve one name. It changes
   * synchronously with the maps it stands for, before any event about them is emitted.
   */
  get generation(): number {
    return this.changes + (this.kept?.generation ?? 0);
  }

  list(): ServedModel[] {
    return [...this.active.keys()].map((id) => this.get(id)!);
  }

  capabilities(): Promise<BackendCapability[]> {
    return this.registry.capabilities();
  }

  /** Stops serving `id`; in-flight requests finish on the version they hold. */
  async unload(id: string): Promise<void> {
    await this.activating.get(id)?.catch(() => undefined);
    await this.dropPrepared(id);
    await this.kept?.unload(id);
    const s = this.active.get(id);
    if (!s) return;
    this.active.delete(id);
    this.changes++;
    await this.retire(id, s);
  }

  async close(): Promise<void> {
    await Promise.all([...new Set([...this.active.keys(), ...this.prepared.keys()])].map((id) => this.unload(id)));
    await this.kept?.close();
  }

  private async dropPrepared(id: string): Promise<void> {
    const p = this.prepared.get(id);
    if (!p) return;
    this.prepared.delete(id);
    await p.model.dispose().catch((err) => this.log.warn({ model: id, err }, 'dispose of a prepared version failed'));
  }

  /** Runs fn on the active version holding a reference for the whole call. */
  private async withModel<T>(
    id: string,
    version: number | undefined,
    fn: (m: ModelVersion, v: number) => Promise<T>,
  ): Promise<T> {
    const s = this.active.get(id);
    if (!s)
      throw new OutpostError(
        'RUNTIME_MODEL_NOT_LOADED',
        `model ${id} is not being served; install and activate it first`,
        { model: id },
      );
    if (version !== undefined && version !== s.version && this.kept) {
      return this.kept.use(id, version, (m) => fn(m, version));
    }
    if (version !== undefined && version !== s.version) {
      throw new OutpostError('RUNTIME_MODEL_NOT_LOADED', `model ${id} serves version ${s.version}, not ${version}`, {
        model: id,
        version,
        active: s.version,
      });
    }
    // Taking the reference synchronously, before any await, is what makes the swap safe.
    s.refs++;
    try {
      return await fn(s.model, s.version);
    } finally {
      s.refs--;
      if (s.retired && s.refs === 0) void this.disposeSlot(id, s);
    }
  }

  private async retire(id: string, s: Slot): Promise<void> {
    s.retired = true;
    if (s.refs === 0) await this.disposeSlot(id, s);
  }

  private async disposeSlot(id: string, s: Slot): Promise<void> {
    try {
      await s.model.dispose();
      this.events.emit('unloaded', { id, version: s.version });
    } catch (err) {
      this.log.error({ model: id, version: s.version, err }, 'dispose failed');
    }
  }
}
