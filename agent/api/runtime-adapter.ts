import type { Purpose } from '../../protocol/manifest-types.js';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Runtime } from '../runtime/runtime.js';
import { ModelIndex } from './names.js';
import type {
  AgentEvent,
  EventSource,
  ModelEntry,
  ModelDescription,
  RepositoryEntry,
  ServingRuntime,
} from './types.js';

/** What the adapter needs of the store for the repository extension (agent/store/store.ts). */
export interface RepositoryStore {
  list(): Promise<{ id: string; current: number | null; versions: number[] }[]>;
  currentDir(id: string): Promise<string | null>;
}

/**
 * Adapts the Runtime (agent/runtime/runtime.ts) to the API's narrow
 * ServingRuntime. The runtime serves exactly one (active) version per model, so a model's
 * loaded versions are that one; a model whose activation failed with nothing active is listed
 * as `failed` with the error, so /v1/status and /ready can say why it does not serve.
 */
export function servingRuntime(
  rt: Runtime,
  opts: { store?: RepositoryStore } = {},
): ServingRuntime & { dispose(): void } {
  const failures = new Map<string, { version: number; code: string; message: string }>();
  // The failures are part of list(): each change of them moves the index's generation too.
  let failureChanges = 0;
  const onFailed = (e: { id: string; version: number; code: string; message: string }) => {
    failures.set(e.id, e);
    failureChanges++;
  };
  const onActivated = (e: { id: string }) => {
    if (failures.delete(e.id)) failureChanges++;
  };
  rt.events.on('failed', onFailed);
  rt.events.on('activated', onActivated);

  const describeNow = (id: string, version?: number): ModelDescription | undefined => {
    const m = rt.get(id, version);
    if (!m) return undefined;
    return {
      id,
      version: m.version,
      purpose: m.purpose as Purpose,
      backend: m.backend,
      inputs: m.inputs,
      outputs: m.outputs,
      serving: m.serving,
      ...(m.batches ? { batches: m.batches } : {}),
    };
  };

  /**
   * What every request reads, rebuilt only when the runtime's generation (or the failures) moved:
   * the sorted list, its name index, and each model's active-version description. Before, every
   * infer listed and sorted all models and built their entries to resolve one name (~3% of the
   * agent's CPU with 16 clients, docs/performance.md round 7). A kept version's description
   * (`/versions/{v}`) is not cached: it is rare and its state lives in KeptVersions.
   */
  let view:
    | { generation: number; failures: number; index: ModelIndex; active: Map<string, ModelDescription | undefined> }
    | undefined;
  const current = () => {
    const generation = rt.generation;
    if (view?.generation !== generation || view.failures !== failureChanges)
      view = { generation, failures: failureChanges, index: new ModelIndex(listNow()), active: new Map() };
    return view;
  };
  const describe = (id: string, version?: number): ModelDescription | undefined => {
    if (version !== undefined) return describeNow(id, version);
    const v = current();
    if (v.active.has(id)) return v.active.get(id);
    const d = describeNow(id);
    v.active.set(id, d);
    return d;
  };

  const listNow = (): ModelEntry[] => {
    const served = rt.list().map(
      (m): ModelEntry => ({
        id: m.id,
        activeVersion: m.version,
        loadedVersions: [m.version, ...(rt.kept?.loaded(m.id) ?? [])].sort((a, b) => a - b),
        state: m.health ? 'unhealthy' : 'ready',
        ...(m.health ? { error: m.health } : {}),
        ...(m.serving?.mode === 'raw-tensors'
          ? { serving: 'raw-tensors' as const, notice: m.serving.reason }
          : m.serving
            ? { serving: 'results' as const }
            : {}),
      }),
    );
    const seen = new Set(served.map((m) => m.id));
    for (const [id, f] of failures) {
      if (!seen.has(id))
        served.push({
          id,
          activeVersion: null,
          loadedVersions: [],
          state: 'failed',
          error: { code: f.code, message: f.message },
        });
    }
    // Shared by every request until the next change: frozen, so that no route can alter it.
    for (const m of served) Object.freeze(m);
    return Object.freeze(served.sort((a, b) => a.id.localeCompare(b.id))) as ModelEntry[];
  };

  return {
    list: () => current().index.models,
    lookup: (name) => current().index.resolve(name),
    describe,
    async infer(id, version, inputs) {
      const r = await rt.infer(id, inputs, version === undefined ? {} : { version });
      return { version: r.version, outputs: r.outputs };
    },
    async predict(id, version, image, opts) {
      const {
        model: _model,
        version: v,
        ...result
      } = await rt.predict(id, image, { ...opts, ...(version === undefined ? {} : { version }) });
      return { version: v, result };
    },
    ...(rt.kept
      ? {
          async ensureVersion(id: string, version: number) {
            await rt.kept!.ensure(id, version);
          },
        }
      : {}),
    ...(opts.store ? repository(rt, opts.store, failures) : {}),
    dispose() {
      rt.events.off('failed', onFailed);
      rt.events.off('activated', onActivated);
    },
  };
}

/** The runtime's activations and failures as API events (the store adds installed/rolled-back). */
export function runtimeEventSource(rt: Runtime): EventSource {
  return {
    subscribe(listener: (e: AgentEvent) => void) {
      const activated = (e: { id: string; version: number; backend: string }) =>
        listener({ type: 'activated', model: e.id, version: e.version });
      const failed = (e: { id: string; version: number; code: string; message: string }) =>
        listener({ type: 'failed', model: e.id, version: e.version, code: e.code, message: e.message });
      // A version that became unhealthy is announced like a failure, with its code.
      const health = (e: { id: string; version: number; health?: { code: string; message: string } }) => {
        if (e.health) failed({ id: e.id, version: e.version, ...e.health });
      };
      rt.events.on('activated', activated);
      rt.events.on('failed', failed);
      rt.events.on('health', health);
      return () => {
        rt.events.off('activated', activated);
        rt.events.off('failed', failed);
        rt.events.off('health', health);
      };
    },
  };
}

/**
 * KServe's model repository extension over the store: the index lists every installed model and
 * every version kept on disk with its state; load serves the current version of a model that is
 * not served (after an unload, or a failed start), unload stops serving it (it stays installed,
 * and the next deployment or load serves it again).
 */
function repository(
  rt: Runtime,
  store: RepositoryStore,
  failures: Map<string, { version: number; code: string; message: string }>,
): Pick<ServingRuntime, 'repositoryIndex' | 'loadModel' | 'unloadModel'> {
  return {
    async repositoryIndex() {
      const out: RepositoryEntry[] = [];
      for (const m of (await store.list()).sort((a, b) => a.id.localeCompare(b.id))) {
        const served = rt.get(m.id);
        const active = served?.version;
        const kept = new Set(rt.kept?.loaded(m.id) ?? []);
        for (const v of [...m.versions].sort((a, b) => a - b)) {
          const failed = failures.get(m.id);
          const unhealthy = v === active ? served?.health : undefined;
          const ready = (v === active && !unhealthy) || kept.has(v);
          out.push({
            name: m.id,
            version: String(v),
            state: ready ? 'READY' : 'UNAVAILABLE',
            reason: ready
              ? ''
              : unhealthy
                ? `${unhealthy.code}: ${unhealthy.message}`
                : failed?.version === v
                  ? `${failed.code}: ${failed.message}`
                  : v === m.current
                    ? 'unloaded'
                    : 'kept on disk; loaded on demand by /versions/{v} requests',
          });
        }
      }
      return out;
    },
    async loadModel(id) {
      const installed = (await store.list()).find((m) => m.id === id);
      const dir = installed?.current != null ? await store.currentDir(id) : null;
      if (!installed || installed.current === null || !dir)
        throw new OutpostError('API_MODEL_NOT_FOUND', `model ${id} has no current version installed on this device`, {
          model: id,
        });
      // An unhealthy version is loaded again (a fresh worker), which is how an operator recovers it.
      const served = rt.get(id);
      if (served?.version === installed.current && !served.health) return;
      await rt.activate(id, installed.current, dir);
    },
    async unloadModel(id) {
      await rt.unload(id);
    },
  };
}
