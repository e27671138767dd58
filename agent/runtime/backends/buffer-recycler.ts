/**
 * A few ArrayBuffers kept for reuse. Why: on this kind of machine a fresh 512 KiB buffer costs
 * 130-500 us (zeroing and first-touch page faults) against ~30 us to copy into one already used;
 * fresh buffers are also what drives the GC here (external memory pressure).
 */
export class Recycler {
  private readonly free: ArrayBuffer[] = [];
  /**
   * The smallest kept buffer that holds `bytes`, else a new one rounded up to a power of two:
   * batches (batch-queue.ts) change the size from run to run, and a buffer of the exact size
   * would fit no later larger batch, so each would pay for fresh pages.
   */
  take(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.byteLength;
      if (n >= bytes && (best < 0 || n < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    return new ArrayBuffer(pow2(bytes));
  }
  /** Keeps at most 4; a full pool swaps its smallest for a larger one. */
  give(b: ArrayBuffer): void {
    if (b.byteLength === 0) return;
    if (this.free.length < 4) return void this.free.push(b);
    let small = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[small]!.byteLength) small = i;
    if (this.free[small]!.byteLength < b.byteLength) this.free[small] = b;
  }
}

const pow2 = (n: number) => Math.max(8, 2 ** Math.ceil(Math.log2(Math.max(1, n))));
