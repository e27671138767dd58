import { toOutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Store } from '../store/index.js';

/**
 * How many installed models load at once at start. onnxruntime creates a session on the event
 * loop, so more at once cannot compute faster; two let one model's file reads (manifest, labels,
 * model bytes) overlap the other's session and smoke test, and bound what start-up holds to the
 * bytes of two model files (docs/runtime.md, "Start-up").
 */
export const BOOT_LOAD_CONCURRENCY = 2;

/**
 * Serves every installed model's current version before READY: each is loaded and smoke-tested
 * (Runtime.activate), exactly as at install. A model that fails is logged and left out; the
 * others are served. Files are not hashed again: the store verified them against the signed
 * metadata before the version became current, and versions/<v> is never written after that
 * (docs/store.md); what a boot re-checks is that the model still loads and runs here.
 */
export async function serveInstalled(store: Store, runtime: Runtime, log: Logger): Promise<void> {
  const queue = (await store.list()).filter((m) => m.current !== null);
  const next = async (): Promise<void> => {
    for (let m = queue.shift(); m; m = queue.shift()) {
      const version = m.current!;
      const dir = await store.currentDir(m.id);
      if (!dir) continue;
      await runtime.activate(m.id, version, dir).catch((err) => {
        const e = toOutpostError(err);
        log.error({ model: m!.id, version, code: e.code }, `installed model could not be loaded: ${e.message}`);
      });
    }
  };
  await Promise.all(Array.from({ length: BOOT_LOAD_CONCURRENCY }, next));
}
