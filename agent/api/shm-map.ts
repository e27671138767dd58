import { type AddonLoad, loadAddon } from '../runtime/backends/native-loader.js';

/**
 * The zero-copy shared-memory addon (addons/shm/shm.cc, `outpost_shm`): maps a registered
 * region's window of the object (MAP_SHARED) as an external ArrayBuffer, behind a SIGBUS guard
 * that turns a client's ftruncate into zeros and a `broken` flag instead of a crash
 * (docs/local-api.md, "Zero copy and the SIGBUS guard"). agent/api/shm.ts is its one user and
 * decides everything the C++ trusts: the fd is one it opened, the window lies inside the object
 * at registration, and a mapping in use by a request is never unmapped.
 */
export interface ShmBinding {
  abi: number;
  /** Slots in the addon's table of mappings (the most mapped at once). */
  slots: number;
  map(fd: number, offset: number, length: number, writable: boolean): { slot: number; buffer: ArrayBuffer };
  /** Detaches `buffer` (every view over it becomes empty), then munmaps the slot. */
  unmap(slot: number, buffer: ArrayBuffer): void;
  /** Whether the guard replaced the slot's mapping with zeros since it was mapped. */
  broken(slot: number): boolean;
  /** fstat(fd).st_size, or -1; no Stats object per call. */
  size(fd: number): number;
  /** Faults the guard has absorbed in this process (tests, diagnostics). */
  faults(): number;
}

let addon: AddonLoad<ShmBinding> | undefined;

/** The binding, or why there is none. `OUTPOST_SHM=pread` forces the copying path. */
export function shmAddon(env: NodeJS.ProcessEnv = process.env): AddonLoad<ShmBinding> {
  if (env.OUTPOST_SHM === 'pread')
    return {
      ok: false,
      reason: 'OUTPOST_SHM=pread: shared-memory tensors are read with pread and written with pwrite',
    };
  addon ??= loadAddon<ShmBinding>('outpost_shm');
  return addon;
}
