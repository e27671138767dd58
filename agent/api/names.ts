import { OutpostError } from '../../protocol/errors/index.js';
import type { ModelEntry } from './types.js';

/**
 * Resolves the `{name}` of a KServe route: the model's `owner/name` (URL-encoded as owner%2Fname,
 * already decoded by the router) or an alias, the name part alone, when exactly one installed
 * model has it. An alias never silently picks one owner over another: two matches are a 409.
 */
export function resolveModel(models: readonly ModelEntry[], name: string): ModelEntry {
  return new ModelIndex(models).resolve(name);
}

/**
 * resolveModel over maps built once: the runtime adapter keeps one per runtime generation, so a
 * request resolves its model name with two map reads instead of listing every model.
 */
export class ModelIndex {
  private readonly byId = new Map<string, ModelEntry>();
  private readonly byAlias = new Map<string, ModelEntry[]>();

  constructor(readonly models: readonly ModelEntry[]) {
    for (const m of models) {
      this.byId.set(m.id, m);
      const alias = m.id.slice(m.id.indexOf('/') + 1);
      const same = this.byAlias.get(alias);
      if (same) same.push(m);
      else this.byAlias.set(alias, [m]);
    }
  }

  resolve(name: string): ModelEntry {
    if (name.includes('/')) {
      const m = this.byId.get(name);
      if (m) return m;
    } else {
      const matches = this.byAlias.get(name);
      if (matches?.length === 1) return matches[0]!;
      if (matches) {
        throw new OutpostError(
          'API_MODEL_AMBIGUOUS',
          `the alias "${name}" matches ${matches.map((m) => m.id).join(', ')}; use the full owner/name (owner%2Fname in the URL)`,
          { alias: name, matches: matches.map((m) => m.id) },
        );
      }
    }
    throw new OutpostError(
      'API_MODEL_NOT_FOUND',
      `no installed model is named "${name.slice(0, 200)}"; GET /v2/models lists them`,
      { model: name.slice(0, 200) },
    );
  }
}

/**
 * `/versions/{v}`: a positive integer that the model has loaded, or with `onDemand` any version
 * (the runtime then loads a kept one, and says so when the device does not have it).
 */
export function resolveVersion(entry: ModelEntry, raw: string | undefined, onDemand = false): number | undefined {
  if (raw === undefined) return undefined;
  const v = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || (!onDemand && !entry.loadedVersions.includes(v))) {
    throw new OutpostError(
      'API_VERSION_NOT_FOUND',
      `model ${entry.id} has no loaded version "${raw.slice(0, 40)}" (loaded: ${entry.loadedVersions.join(', ') || 'none'})`,
      { model: entry.id, version: raw.slice(0, 40), loaded: entry.loadedVersions },
    );
  }
  return v;
}
