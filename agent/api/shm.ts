import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { isRegionName, type ShmRef } from '../../protocol/kserve.js';
import { type ShmBinding, shmAddon } from './shm-map.js';

/**
 * System shared-memory regions (the KServe v2 / Triton extension): a client creates a POSIX
 * shared-memory object (shm_open, i.e. a file in /dev/shm), registers a window of it under a
 * name, and then names that window in inference requests instead of sending tensor bytes.
 *
 * Safe by construction, each refusal with its code:
 * - the key is one file name in /dev/shm: no '/' (but the one leading '/' that shm_open names
 *   carry), no '..', no NUL; it is opened with O_NOFOLLOW, so a symlink planted there is refused
 *   (ELOOP), and it must be a regular file (fstat), so a FIFO or device is refused;
 * - the region [offset, offset + byte_size) must lie inside the object's size at registration;
 * - regions are bounded in count and in registered bytes;
 * - every tensor's [offset, offset + size) is checked against its region before any read or
 *   write, and the object's current size is checked again (a client may shrink it).
 *
 * Two ways to reach the bytes, with the same results and codes:
 * - zero copy (the outpost_shm addon, agent/api/shm-map.ts): the region's window is mapped
 *   (MAP_SHARED) at registration; an input tensor is a typed-array view of the mapping that
 *   onnxruntime reads in place, and an output is one TypedArray.set into it. A client that
 *   truncates its object while it is mapped would turn the next access into SIGBUS, which kills
 *   a process and which no check in JavaScript can prevent (the client runs concurrently), so
 *   the addon installs the guard Wayland compositors use for client memory pools: a SIGBUS
 *   inside one of our mappings maps zeros over that mapping, flags it broken, and lets the
 *   access go on. After the run (and after each output write) the request checks the flag and
 *   the object's size; a broken region fails the request with API_SHM_OUT_OF_RANGE and stays
 *   refused until the client registers it again. A mapping in use by a request is unmapped only
 *   when the last such request ends, however early it was unregistered (`uses`).
 * - pread/pwrite on the fd opened at registration (no addon, OUTPOST_SHM=pread, a tensor whose
 *   address is not 8-byte aligned, or more regions than the addon has slots): pread past the
 *   end just returns fewer bytes. The copy is from the page cache (tmpfs) and costs ~0.05 ms per
 *   588 KiB here (docs/performance.md).
 * The fd stays open while the region is registered: renaming or unlinking the name afterwards
 * does not change which object the region reads (the same rule as an mmap in Triton).
 */
export interface ShmLimits {
  /** Regions registered at once. */
  maxRegions: number;
  /** Sum of byte_size over the registered regions. */
  maxRegisteredBytes: number;
}

export const DEFAULT_SHM_LIMITS: ShmLimits = Object.freeze({
  maxRegions: 64,
  maxRegisteredBytes: 4 * 1024 * 1024 * 1024,
});

/** Triton's status entry for one region. */
export interface RegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

interface Region extends RegionStatus {
  fd: number;
  writable: boolean;
  /** The window as mapped by the addon (bytes: exactly the region), or undefined (pread/pwrite). */
  map: { slot: number; buffer: ArrayBuffer; bytes: Uint8Array } | undefined;
  /** Requests holding a view of the mapping now. */
  uses: number;
  /** Unregistered: unmapped and closed when `uses` reaches 0. */
  retired: boolean;
}

/** A mapped input's view, valid until release(); verify() after the run says whether it read the client's bytes. */
export interface ShmView {
  bytes: Uint8Array;
  /** Throws API_SHM_OUT_OF_RANGE when the object shrank under the view (the guard's zeros were read). */
  verify(): void;
  release(): void;
}

/** Zero-copy views are handed out only at addresses aligned for every dtype. */
const VIEW_ALIGN = 8;

function defaultMapper(): ShmBinding | null {
  const a = shmAddon();
  return a.ok ? a.binding : null;
}

/** shm_open names are "/name"; the slash is part of POSIX's spelling, not a path. */
const KEY = /^\/?[A-Za-z0-9_.,:@+-]{1,200}$/;

export function parseRegisterBody(v: unknown): { key: string; offset: number; byteSize: number } {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new OutpostError('API_SHM_BAD_REQUEST', 'the register body must be a JSON object {key, offset, byte_size}');
  const { key, offset = 0, byte_size: byteSize } = v as Record<string, unknown>;
  if (typeof key !== 'string') throw new OutpostError('API_SHM_KEY_INVALID', 'key must be a string', { key });
  const count = (x: unknown, k: string, min: number): number => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min)
      throw new OutpostError('API_SHM_BAD_REQUEST', `${k} must be an integer of at least ${min}`, { key: k, value: x });
    return x;
  };
  return { key, offset: count(offset, 'offset', 0), byteSize: count(byteSize, 'byte_size', 1) };
}

function checkKey(key: string): string {
  const name = key.startsWith('/') ? key.slice(1) : key;
  if (!KEY.test(key) || name.includes('/') || name.includes('..') || name === '.') {
    throw new OutpostError(
      'API_SHM_KEY_INVALID',
      `key ${JSON.stringify(key.slice(0, 80))} must be the name of one shared-memory object in /dev/shm (as given to shm_open: letters, digits, _ . , : @ + -, an optional leading /, no other /, no ..)`,
      { key: key.slice(0, 80) },
    );
  }
  return name;
}

export class ShmRegistry {
  private readonly regions = new Map<string, Region>();
  private registered = 0;

  constructor(
    private readonly limits: ShmLimits = DEFAULT_SHM_LIMITS,
    /** Where POSIX shared-memory objects live; tests keep the default. */
    private readonly dir = '/dev/shm',
    /** The zero-copy addon, or null for pread/pwrite (agent/api/shm-map.ts). */
    private readonly mapper: ShmBinding | null = defaultMapper(),
  ) {}

  /** 'mmap' when regions are mapped (the addon loaded), else 'pread'. */
  get mode(): 'mmap' | 'pread' {
    return this.mapper ? 'mmap' : 'pread';
  }

  register(name: string, body: unknown): void {
    if (!isRegionName(name))
      throw new OutpostError('API_SHM_BAD_REQUEST', 'region names are 1-128 of A-Z a-z 0-9 _ . : -', {
        name: String(name).slice(0, 80),
      });
    const { key, offset, byteSize } = parseRegisterBody(body);
    const file = checkKey(key);
    if (this.regions.has(name))
      throw new OutpostError(
        'API_SHM_REGION_EXISTS',
        `region ${name} is already registered; unregister it first or use another name`,
        { region: name },
      );
    if (this.regions.size >= this.limits.maxRegions)
      throw new OutpostError(
        'API_SHM_LIMIT',
        `${this.regions.size} regions are registered, the most the agent keeps; unregister some first`,
        { limit: this.limits.maxRegions },
      );
    if (this.registered + byteSize > this.limits.maxRegisteredBytes)
      throw new OutpostError(
        'API_SHM_LIMIT',
        `registering ${byteSize} more bytes would pass the agent's bound of ${this.limits.maxRegisteredBytes} registered bytes`,
        { limit: this.limits.maxRegisteredBytes, registered: this.registered },
      );
    const { fd, writable } = openObject(join(this.dir, file), key);
    try {
      const st = fstatSync(fd);
      if (!st.isFile())
        throw new OutpostError(
          'API_SHM_OBJECT_UNAVAILABLE',
          `${key} is not a shared-memory object (not a regular file)`,
          {
            key,
          },
        );
      if (offset + byteSize > st.size)
        throw new OutpostError(
          'API_SHM_OUT_OF_RANGE',
          `region [${offset}, ${offset + byteSize}) does not fit ${key}, which has ${st.size} bytes; ftruncate the object first or register a smaller region`,
          { key, offset, byteSize, objectBytes: st.size },
        );
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.regions.set(name, {
      name,
      key,
      offset,
      byte_size: byteSize,
      fd,
      writable,
      map: this.mapRegion(fd, offset, byteSize, writable),
      uses: 0,
      retired: false,
    });
    this.registered += byteSize;
  }

  /** The region's window mapped, or undefined: a failed map (no slot, mmap refused) leaves it on pread. */
  private mapRegion(fd: number, offset: number, byteSize: number, writable: boolean): Region['map'] {
    if (!this.mapper) return undefined;
    try {
      const { slot, buffer } = this.mapper.map(fd, offset, byteSize, writable);
      return { slot, buffer, bytes: new Uint8Array(buffer) };
    } catch {
      return undefined;
    }
  }

  /** One region (name given) or all of them. */
  unregister(name?: string): void {
    const names = name === undefined ? [...this.regions.keys()] : [this.get(name).name];
    for (const n of names) {
      const r = this.regions.get(n)!;
      this.regions.delete(n);
      this.registered -= r.byte_size;
      r.retired = true;
      if (r.uses === 0) this.dispose(r);
    }
  }

  private dispose(r: Region): void {
    if (r.map) this.mapper!.unmap(r.map.slot, r.map.buffer);
    r.map = undefined;
    closeSync(r.fd);
  }

  status(name?: string): RegionStatus[] {
    const list = name === undefined ? [...this.regions.values()] : [this.get(name)];
    return list.map(({ name, key, offset, byte_size }) => ({ name, key, offset, byte_size }));
  }

  get size(): number {
    return this.regions.size;
  }

  /** Checks that `ref` names a registered region and lies inside it; returns the object offset. */
  check(ref: ShmRef, what: string): number {
    const r = this.get(ref.region);
    if (ref.offset + ref.byteSize > r.byte_size)
      throw new OutpostError(
        'API_SHM_OUT_OF_RANGE',
        `${what}: [${ref.offset}, ${ref.offset + ref.byteSize}) is outside region ${r.name} of ${r.byte_size} bytes`,
        { region: r.name, offset: ref.offset, byteSize: ref.byteSize, regionBytes: r.byte_size },
      );
    return r.offset + ref.offset;
  }

  /**
   * The zero-copy view of input `ref` (checked against its region), held by the request until
   * release(); undefined when the region is not mapped or the tensor's address is not aligned
   * (the caller then copies with read()). A region the guard broke is refused here.
   */
  view(ref: ShmRef, what: string): ShmView | undefined {
    const at = this.check(ref, what);
    const r = this.regions.get(ref.region)!;
    if (!r.map || at % VIEW_ALIGN !== 0) return undefined;
    this.refuseBroken(r, what);
    r.uses++;
    let released = false;
    return {
      bytes: r.map.bytes.subarray(ref.offset, ref.offset + ref.byteSize),
      verify: () => this.verifyMapped(r, at + ref.byteSize, what),
      release: () => {
        if (released) return;
        released = true;
        if (--r.uses === 0 && r.retired) this.dispose(r);
      },
    };
  }

  private refuseBroken(r: Region, what: string): void {
    if (r.map && this.mapper!.broken(r.map.slot))
      throw new OutpostError(
        'API_SHM_OUT_OF_RANGE',
        `${what}: the object ${r.key} shrank while region ${r.name} was in use, so the agent read zeros instead of your data; resize the object, then unregister and register the region again`,
        { region: r.name, key: r.key },
      );
  }

  /** After an access through the mapping: the guard did not fire and the object still holds [.., end). */
  private verifyMapped(r: Region, end: number, what: string): void {
    this.refuseBroken(r, what);
    if (r.map && this.mapper!.size(r.fd) < end) throw shrunk(r, what);
  }

  /** Reads `ref` into `into` (exactly ref.byteSize bytes long). */
  read(ref: ShmRef, into: Uint8Array, what: string): void {
    const at = this.check(ref, what);
    const r = this.regions.get(ref.region)!;
    this.refuseBroken(r, what);
    let done = 0;
    while (done < ref.byteSize) {
      const n = readSync(r.fd, into, done, ref.byteSize - done, at + done);
      if (n === 0) throw shrunk(r, what);
      done += n;
    }
  }

  /** Writes `bytes` at `ref` (bytes.byteLength <= ref.byteSize was checked by the caller). */
  write(ref: ShmRef, bytes: Uint8Array, what: string): void {
    const at = this.check({ region: ref.region, offset: ref.offset, byteSize: bytes.byteLength }, what);
    const r = this.regions.get(ref.region)!;
    if (!r.writable)
      throw new OutpostError(
        'API_SHM_OBJECT_UNAVAILABLE',
        `${what}: region ${r.name} (${r.key}) was opened read-only (the agent may not write the object); give the agent write permission for outputs`,
        { region: r.name },
      );
    const end = at + bytes.byteLength;
    if (r.map) {
      this.verifyMapped(r, end, what);
      r.map.bytes.set(bytes, ref.offset);
      // A shrink during the copy: the guard's flag, or a size now short of the output.
      this.verifyMapped(r, end, what);
      return;
    }
    // pwrite past the end would grow the object: refuse instead, as for reads.
    if (fstatSync(r.fd).size < end) throw shrunk(r, what);
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(r.fd, bytes, done, bytes.byteLength - done, at + done);
  }

  close(): void {
    this.unregister();
  }

  private get(name: string): Region {
    const r = this.regions.get(name);
    if (!r)
      throw new OutpostError(
        'API_SHM_REGION_UNKNOWN',
        `no shared-memory region ${JSON.stringify(name.slice(0, 80))} is registered; register it first (GET /v2/systemsharedmemory/status lists them)`,
        { region: name.slice(0, 80) },
      );
    return r;
  }
}

function shrunk(r: Region, what: string): OutpostError {
  return new OutpostError(
    'API_SHM_OUT_OF_RANGE',
    `${what}: the object ${r.key} is now smaller than region ${r.name}; re-register it after resizing`,
    { region: r.name, key: r.key },
  );
}

function openObject(path: string, key: string): { fd: number; writable: boolean } {
  // O_NONBLOCK: opening a FIFO planted under the name must not hang the agent (fstat refuses it next).
  const flags = constants.O_NOFOLLOW | constants.O_NONBLOCK;
  try {
    return { fd: openSync(path, flags | constants.O_RDWR), writable: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS') {
      try {
        return { fd: openSync(path, flags | constants.O_RDONLY), writable: false };
      } catch (e2) {
        throw openFailure(key, (e2 as NodeJS.ErrnoException).code);
      }
    }
    throw openFailure(key, code);
  }
}

function openFailure(key: string, code: string | undefined): OutpostError {
  if (code === 'ELOOP')
    return new OutpostError(
      'API_SHM_KEY_INVALID',
      `${key} in /dev/shm is a symbolic link; register the shared-memory object itself`,
      { key, errno: code },
    );
  const why =
    code === 'ENOENT'
      ? 'does not exist (create it with shm_open and ftruncate first)'
      : code === 'EACCES'
        ? 'is not readable by the agent (give its user or group read permission)'
        : `cannot be opened (${code ?? 'error'})`;
  return new OutpostError('API_SHM_OBJECT_UNAVAILABLE', `the shared-memory object ${key} ${why}`, {
    key,
    errno: code,
  });
}
