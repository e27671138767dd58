import { readFile } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';

/**
 * The host's memory from /proc/meminfo: MemTotal and MemAvailable (what the kernel estimates
 * can be given to a new program without swapping, the number `free` shows as "available").
 * Read directly, with one async read, instead of loading a system-information library for two
 * numbers; elsewhere than Linux, Node's own totalmem/freemem.
 */
export interface HostMemory {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
}

export async function readHostMemory(file = '/proc/meminfo'): Promise<HostMemory> {
  let total = totalmem();
  let available = freemem();
  try {
    const text = await readFile(file, 'utf8');
    const kib = (key: string): number | null => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
      return m ? Number(m[1]) * 1024 : null;
    };
    total = kib('MemTotal') ?? total;
    available = kib('MemAvailable') ?? available;
  } catch {
    // not Linux, or /proc not mounted: Node's numbers above
  }
  return { totalBytes: total, availableBytes: available, usedBytes: total - available };
}
