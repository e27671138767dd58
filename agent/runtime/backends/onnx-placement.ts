import { readFile } from 'node:fs/promises';
import { silentLogger, type Logger, moduleLogger } from '../../../protocol/log.js';
import { writeFileAtomic } from '../../fs/atomic-file.js';

/**
 * What the ONNX backend measured of each installed model: the least trial time (microseconds)
 * ever seen for one model file of one version with one set of session options, kept in
 * `<modelsDir>/.outpost/placement.json`, so that a restart places a model without running it
 * three times first (onnx.ts, "Placement").
 *
 * Why a least time can be trusted: other processes on the device only ever make a run slower,
 * so the least time seen is an upper bound of what the model costs. A value under the threshold
 * therefore settles "on the event loop" for good, and is used as is. A value at or over it does
 * not settle "in a worker" (it may have been measured on a busy device, and a tiny model moved
 * to a worker costs a second isolate of ~10 MiB): such a model is measured again at each load,
 * and the memo keeps the least of all measurements, so a busy moment can only ever cost one
 * wrong placement until the next load, never pin one.
 *
 * The key is the model's id, version, file and size, plus the session options that change the
 * time (threads, execution mode, providers). A published version is immutable (the store
 * verified its files against the signed metadata), so the key names the same bytes wherever the
 * folder is copied or restored; inode and mtime would not survive a copy. Nothing here is a
 * security decision: a wrong entry costs speed or memory, never a wrong answer.
 *
 * Bounded: at most MAX_ENTRIES keys (the oldest go first), a file over MAX_BYTES is ignored,
 * and an unreadable or malformed file is a cold start, never an error.
 */
export interface PlacementMemo {
  /** The least trial time recorded under `key`, or undefined. */
  lookup(key: string): Promise<number | undefined>;
  /** Records a measurement (the memo keeps the least) and schedules a write. */
  record(key: string, micros: number): void;
  /** Writes what is pending now (tests; the daemon's stop). */
  flush(): Promise<void>;
}

export const MAX_ENTRIES = 4096;
const MAX_BYTES = 1024 * 1024;
const WRITE_DELAY_MS = 1000;

/** The memo file's content, validated; anything else is treated as an empty memo. */
export function parsePlacementFile(value: unknown): Map<string, number> {
  const out = new Map<string, number>();
  const v = value as { v?: unknown; micros?: unknown } | null;
  if (!v || typeof v !== 'object' || v.v !== 1 || !v.micros || typeof v.micros !== 'object') return out;
  for (const [k, m] of Object.entries(v.micros as Record<string, unknown>)) {
    if (out.size >= MAX_ENTRIES) break;
    if (k.length <= 1024 && typeof m === 'number' && Number.isFinite(m) && m >= 0) out.set(k, m);
  }
  return out;
}

export function filePlacementMemo(path: string, opts: { log?: Logger } = {}): PlacementMemo {
  const log = moduleLogger(opts.log ?? silentLogger, 'runtime.placement');
  let entries: Promise<Map<string, number>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const load = () =>
    (entries ??= readFile(path)
      .then(
        (buf) => (buf.length > MAX_BYTES ? new Map<string, number>() : parsePlacementFile(JSON.parse(buf.toString()))),
        () => new Map<string, number>(),
      )
      .catch(() => new Map<string, number>()));

  const write = async () => {
    timer = undefined;
    const map = await load();
    const doc = { v: 1, micros: Object.fromEntries(map) };
    writing = writing
      .then(() => writeFileAtomic(path, `${JSON.stringify(doc)}\n`))
      .catch((err: unknown) => log.debug({ err, path }, 'placement memo not written'));
    await writing;
  };

  return {
    async lookup(key) {
      return (await load()).get(key);
    },
    record(key, micros) {
      void load().then((map) => {
        const prev = map.get(key);
        if (prev !== undefined && prev <= micros) return;
        map.delete(key);
        map.set(key, micros);
        while (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string);
        // Written a moment later, off the start-up path, and once for a burst of loads.
        timer ??= setTimeout(() => void write(), WRITE_DELAY_MS).unref();
      });
    },
    async flush() {
      await load();
      if (timer) {
        clearTimeout(timer);
        await write();
      }
      await writing;
    },
  };
}
