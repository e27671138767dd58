import { toOutpostError } from '../../protocol/errors/index.js';
import type { ServingRuntime } from '../api/index.js';

/**
 * Wraps what the socket API serves so that every inference is counted for telemetry (per model
 * and version: count, errors, latency), without the runtime or the API knowing about telemetry.
 */
export function meteredRuntime(
  inner: ServingRuntime,
  record: (model: string, version: number, ms: number, ok: boolean) => void,
): ServingRuntime {
  const timed = async <T extends { version: number }>(
    id: string,
    version: number | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    const start = performance.now();
    try {
      const out = await run();
      record(id, out.version, performance.now() - start, true);
      return out;
    } catch (err) {
      // A request refused before it reached a model (unknown model, bad input) is the client's
      // error, not the model's: count only failures of a model that exists.
      const served = inner.describe(id, version);
      if (served && toOutpostError(err).status >= 500) record(id, served.version, performance.now() - start, false);
      throw err;
    }
  };
  return {
    // Version loading and the repository extension pass through unmetered (no inference).
    ...inner,
    list: () => inner.list(),
    lookup: (name) => inner.lookup(name),
    describe: (id, version) => inner.describe(id, version),
    infer: (id, version, inputs) => timed(id, version, () => inner.infer(id, version, inputs)),
    predict: (id, version, image, opts) => timed(id, version, () => inner.predict(id, version, image, opts)),
  };
}
