import { closeSync, constants, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { elementCount, fromBytes, type ShmTensor, type WireTensor } from '../../protocol/kserve.js';

/**
 * A POSIX shared-memory object for the agent's system shared-memory extension, from Node: the
 * file /dev/shm/<name> that shm_open("/<name>") would create. Node cannot mmap, so this side
 * writes and reads the object with pwrite/pread (one copy each way); Python's client maps it
 * with mmap and numpy views it without copies.
 *
 *   const shm = SharedMemoryObject.create('/cam0', 2 * 588 * 1024);
 *   shm.write(0, tensor.data);
 *   await agent.registerSharedMemory('cam0', shm.key, shm.byteSize);
 *   await agent.infer('acme/net', { data: { dtype: 'float32', shape, shm: { region: 'cam0', offset: 0, byteSize } } });
 *   ...; await agent.unregisterSharedMemory('cam0'); shm.destroy();
 */
export class SharedMemoryObject {
  private closed = false;

  private constructor(
    readonly key: string,
    readonly byteSize: number,
    private readonly fd: number,
    private readonly path: string,
  ) {}

  /** Creates the object (refusing an existing one) with mode 0660, so the agent's group may use it. */
  static create(key: string, byteSize: number, dir = '/dev/shm'): SharedMemoryObject {
    const name = key.startsWith('/') ? key.slice(1) : key;
    if (!/^[A-Za-z0-9_.,:@+-]{1,200}$/.test(name) || name.includes('..'))
      throw new OutpostError('USAGE', `shared-memory key ${JSON.stringify(key)} must be "/name" with no other "/"`);
    const path = join(dir, name);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o660);
    try {
      ftruncateSync(fd, byteSize);
    } catch (err) {
      closeSync(fd);
      unlinkSync(path);
      throw err;
    }
    return new SharedMemoryObject(`/${name}`, byteSize, fd, path);
  }

  write(offset: number, data: Uint8Array | WireTensor['data']): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (offset < 0 || offset + bytes.byteLength > this.byteSize)
      throw new OutpostError(
        'USAGE',
        `write of ${bytes.byteLength} bytes at ${offset} passes the object's ${this.byteSize}`,
      );
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, offset + done);
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /** An output the agent wrote: `regionOffset` is where the registered region starts in the object. */
  readTensor(t: ShmTensor, regionOffset = 0): WireTensor {
    const bytes = this.read(regionOffset + t.shm.offset, t.shm.byteSize);
    return { dtype: t.dtype, shape: t.shape, data: fromBytes(bytes, t.dtype, elementCount(t.shape)) };
  }

  /** Closes and unlinks the object (the agent's open fd keeps it alive until it unregisters). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    try {
      unlinkSync(this.path);
    } catch {
      // Already removed: nothing to do.
    }
  }
}
