import type { Purpose } from '../../protocol/manifest-types.js';
import type { Runtime } from '../runtime/runtime.js';
import type { AgentEvent, EventSource, ModelEntry, ModelDescription, ServingRuntime } from './types.js';

/**
 * Adapts the Runtime (agent/runtime/runtime.ts) to the API's narrow
 * ServingRuntime. The runtime serves exactly one (active) version per model, so a model's
 * loaded versions are that one; a model whose activation failed with nothing active is listed
 * as `failed` with the error, so /v1/status and /ready can say why it does not serve.
 */
export function servingRuntime(rt: Runtime): ServingRuntime & { dispose(): void } {
  const failures = new Map<string, { version: number; code: string; message: string }>();
  const onFailed = (e: { id: string; version: number; code: string; message: string }) => failures.set(e.id, e);
  const onActivated = (e: { id: string }) => failures.delete(e.id);
  rt.events.on('failed', onFailed);
  rt.events.on('activated', onActivated);

  const describe = (id: string, version?: number): ModelDescription | undefined => {
    const m = rt.get(id);
    if (!m || (version !== undefined && m.version !== version)) return undefined;
    return {
      id,
      version: m.version,
      purpose: m.purpose as Purpose,
      backend: m.backend,
      inputs: m.inputs,
      outputs: m.outputs,
      serving: m.serving,
    };
  };

  return {
    list(): ModelEntry[] {
      const served = rt.list().map(
        (m): ModelEntry => ({
          id: m.id,
          activeVersion: m.version,
          loadedVersions: [m.version],
          state: 'ready',
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
      return served.sort((a, b) => a.id.localeCompare(b.id));
    },
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
      rt.events.on('activated', activated);
      rt.events.on('failed', failed);
      return () => {
        rt.events.off('activated', activated);
        rt.events.off('failed', failed);
      };
    },
  };
}
