/**
 * The models folder on the device: atomic install, activation gate, rollback, GC, crash recovery.
 *
 *   const store = await openStore({ dir: '/var/lib/outpost/models', keep: 3, log });
 *   // openStore has already run recover(): an interrupted install was finished or undone.
 *   await store.installVersion({
 *     id: 'alwaysai/mobilenet', version: 4,
 *     files: [{ path: 'model.onnx', sha256, size }, ...],         // verified signed metadata
 *     source: { baseUrl: cloudUrl, headers: { authorization: `Bearer ${token}` } },
 *     beforeActivate: async (versionDir, manifest) => { ...load + smoke run, throw to refuse... },
 *     signal, onProgress: ({ phase, done, total }) => ...,       // 'downloading' | 'verifying' | 'installing'
 *   });                                       // -> { id, version, previous, downloaded, reused, bytesFetched }
 *   await store.list();                       // -> [{ id, current, versions }]
 *   await store.currentDir(id);               // -> '<dir>/<owner>/<name>/versions/<v>' | null
 *   await store.activate(id, v, { beforeActivate }); await store.rollback(id); // -> { from, to }
 *   await store.remove(id); await store.gc(); // -> { versions, blobs, bytes }
 *
 * Errors are OutpostErrors: STORE_* (store.ts codes), FETCH_* from downloads, and whatever
 * OutpostError `beforeActivate` throws (other throws become STORE_ACTIVATION_FAILED). On every
 * error the previous version stays current. Mutating calls are serialised; one process owns a
 * models folder. Layout, journal and the crash-safety argument: docs/store.md.
 */
import { Store, type StoreOptions } from './store.js';

export {
  Store,
  type StoreOptions,
  type InstalledModel,
  type InstallRequest,
  type InstallResult,
  type InstallPhase,
  type VersionManifest,
} from './store.js';
export { parseVersionFiles, unsafePathReason, type VersionFile } from './files.js';

export async function openStore(opts: StoreOptions): Promise<Store> {
  const store = new Store(opts);
  await store.recover();
  return store;
}
