import fs from 'node:fs';
import Module from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, sep } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import vm from 'node:vm';
import { isYoungGenerationHeld, withYoungGenerationHeld } from './startup-heap.js';

/**
 * V8's code cache for the device bundle: what node 22's `module.enableCompileCache()` does, for
 * node 20, which has no such API.
 *
 * Compiling the JavaScript that runs before READY=1 (about 350 KB: the error catalog, pino, the
 * local API, the runtime, the store, the config) was the largest part of the agent's own start-up
 * CPU that was left (docs/systemd.md#footprint). With a cache, V8 deserializes the bytecode of a
 * file instead of parsing and compiling it, including the functions that ran the last time (the
 * cache is written after they ran, not right after the compile).
 *
 * How: the bundle is CommonJS (agent/bundle.mjs), so its files load through
 * `Module.prototype._compile`; for the files under `scope` that hook compiles them with
 * `vm.Script` and the cache's bytes, exactly as node would with the same wrapper and line offsets
 * (stack traces and source maps keep their lines and columns). Files outside `scope` (node_modules)
 * go through node's own path.
 *
 * Where: `OUTPOST_COMPILE_CACHE` (a folder, or `off`), else systemd's `$CACHE_DIRECTORY` (the
 * unit's `CacheDirectory=outpost`: /var/cache/outpost, kept across restarts), else a folder of
 * this user's in the temp directory, as node 22 does. One subfolder per node version and arch.
 * The folder must be a real directory owned by this user and not writable by group or others,
 * or the cache is not used: cached bytecode runs as the agent's own code.
 *
 * Validity: an entry records the size and mtime of the file it was made from (the way Python's
 * .pyc files do; the bundle's chunk names carry a content hash too), and V8 itself rejects bytes
 * from another V8 version or other V8 flags. A missing, stale, rejected or unreadable entry means
 * a normal compile, never an error. V8 checks the checksum of the bytes only with
 * `--verify-snapshot-checksum`, which release builds leave off: without it a damaged entry (a
 * disk error) makes V8 abort while deserializing, so the agent would crash at every start. The
 * hook turns it on (it costs about 0.2 ms per 200 KB of cache). V8's flag check includes that
 * flag and `--semi-space-growth-factor`, which the start changes (startup-heap.ts), so each entry
 * is written under the flags its file was compiled with.
 *
 * When: `flushCompileCache()` writes the entries that were missing or rejected (the daemon calls
 * it after READY=1 and at its stop), each by a rename, so a reader never sees half of one.
 */

const MAGIC = 0x4f504331; // "OPC1"
const HEADER = 24; // magic u32, reserved u32, size f64, mtimeMs f64

export interface CompileCacheStats {
  /** The folder in use, or null (with `reason`) when the cache is off. */
  dir: string | null;
  reason?: string;
  /** Files compiled from the cache / without it (missing, stale or rejected by V8). */
  hits: number;
  misses: number;
  /** Entries written by flushCompileCache() so far. */
  written: number;
}

interface Pending {
  script: vm.Script;
  file: string;
  size: number;
  mtimeMs: number;
  held: boolean;
}

const stats: CompileCacheStats = { dir: null, reason: 'not enabled', hits: 0, misses: 0, written: 0 };
const pending: Pending[] = [];
let enabled = false;
let scopeDir: string | undefined;

/** The cache folder for this environment, or the reason there is none. */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): { dir: string } | { reason: string } {
  const setting = env.OUTPOST_COMPILE_CACHE;
  if (setting === 'off' || setting === '0') return { reason: 'OUTPOST_COMPILE_CACHE=off' };
  if (env.NODE_DISABLE_COMPILE_CACHE) return { reason: 'NODE_DISABLE_COMPILE_CACHE is set' };
  const uid = process.getuid?.() ?? 0;
  // systemd may give several folders separated by colons; the unit names one.
  const base = setting || env.CACHE_DIRECTORY?.split(':')[0] || join(tmpdir(), `outpost-agent-compile-cache-${uid}`);
  return { dir: join(base, `node-${process.version}-${process.arch}`) };
}

/**
 * Checks that `dir` is this user's alone (making it, 0700, with `create`); returns why not. A
 * folder someone else could write is refused rather than repaired: its entries cannot be
 * trusted. A folder that does not exist yet is 'absent': nothing to read, made at the first flush.
 */
function privateDir(dir: string, create: boolean): string | 'absent' | undefined {
  try {
    if (create) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    else if (!fs.existsSync(dir)) return 'absent';
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not ${uid}`;
    if ((st.mode & 0o022) !== 0) return `${dir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)})`;
    return undefined;
  } catch (err) {
    return `cannot use ${dir}: ${(err as Error).message}`;
  }
}

/**
 * Compiles the CommonJS files under `scope` with the code cache from now on. Idempotent. On a
 * node that has `module.enableCompileCache` (22.1+), that is used instead, for the same folder.
 */
export function enableCompileCache(scope: string, env: NodeJS.ProcessEnv = process.env): CompileCacheStats {
  if (enabled) return stats;
  enabled = true;
  const where = compileCacheDir(env);
  if ('reason' in where) return setOff(where.reason);
  const native = (Module as { enableCompileCache?: (dir: string) => { status: number; message?: string } })
    .enableCompileCache;
  if (native) {
    const r = native(where.dir);
    stats.dir = where.dir;
    delete stats.reason;
    if (r.message) stats.reason = r.message;
    return stats;
  }
  stats.dir = where.dir;
  delete stats.reason;
  setFlagsFromString('--verify-snapshot-checksum');
  scopeDir = scope;
  const prefix = scope.endsWith(sep) ? scope : scope + sep;
  const proto = Module.prototype as unknown as {
    _compile(this: NodeModule, content: string, filename: string): unknown;
  };
  const original = proto._compile;
  proto._compile = function (this: NodeModule, content: string, filename: string) {
    if (!filename.startsWith(prefix) || !filename.endsWith('.js')) return original.call(this, content, filename);
    return compileCached(this, content, filename, where.dir);
  };
  return stats;
}

/** Whether entries may be read: checked once, at the first file compiled through the hook. */
let readable: boolean | undefined;

function setOff(reason: string): CompileCacheStats {
  stats.dir = null;
  stats.reason = reason;
  return stats;
}

function compileCached(mod: NodeModule, content: string, filename: string, dir: string): unknown {
  const file = join(dir, `${basename(filename)}.cache`);
  let size = -1;
  let mtimeMs = -1;
  try {
    const st = fs.statSync(filename);
    size = st.size;
    mtimeMs = st.mtimeMs;
  } catch {
    // not a file on disk: compiled without the cache, and never written to it
  }
  if (readable === undefined) {
    const refused = privateDir(dir, false);
    readable = refused === undefined;
    if (refused && refused !== 'absent') setOff(refused);
  }
  const cachedData = size >= 0 && readable ? readEntry(file, size, mtimeMs) : undefined;
  // The wrapper is on a line of its own, and lineOffset -1 puts the file's first line at 1: the
  // same lines and columns as node's own compile of the file.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {\n${content}\n})`, {
    filename,
    lineOffset: -1,
    cachedData,
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  } as vm.ScriptOptions);
  if (cachedData && !script.cachedDataRejected) stats.hits++;
  else {
    stats.misses++;
    if (size >= 0) pending.push({ script, file, size, mtimeMs, held: isYoungGenerationHeld() });
  }
  const fn = script.runInThisContext({ displayErrors: true }) as (...args: unknown[]) => unknown;
  return fn.call(mod.exports, mod.exports, makeRequire(mod), mod, filename, dirname(filename));
}

/** The `require` node gives a CommonJS module (Module.createRequire minus the path lookup). */
function makeRequire(mod: NodeModule): NodeJS.Require {
  const M = Module as unknown as {
    _resolveFilename(request: string, parent: NodeModule, isMain: boolean, options?: unknown): string;
    _cache: NodeJS.Dict<NodeModule>;
    _extensions: NodeJS.RequireExtensions;
  };
  const require = ((id: string) => mod.require(id)) as NodeJS.Require;
  require.resolve = ((request: string, options?: unknown) =>
    M._resolveFilename(request, mod, false, options)) as NodeJS.RequireResolve;
  require.main = process.mainModule;
  require.cache = M._cache;
  require.extensions = M._extensions;
  return require;
}

function readEntry(file: string, size: number, mtimeMs: number): Buffer | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (buf.length <= HEADER || buf.readUInt32LE(0) !== MAGIC) return undefined;
  if (buf.readDoubleLE(8) !== size || buf.readDoubleLE(16) !== mtimeMs) return undefined;
  return buf.subarray(HEADER);
}

/**
 * Writes the entries of the files compiled without a usable one since the last flush. Errors
 * (a full disk, a read-only folder) leave the cache as it was and are returned, not thrown.
 */
export function flushCompileCache(): { written: number; error?: string } {
  let written = 0;
  let error: string | undefined;
  if (pending.length === 0 || !stats.dir) {
    pending.length = 0;
    return { written };
  }
  const refused = privateDir(stats.dir, true);
  if (refused) {
    pending.length = 0;
    setOff(refused);
    return { written, error: refused };
  }
  for (const p of pending.splice(0)) {
    try {
      const data = p.held ? withYoungGenerationHeld(() => p.script.createCachedData()) : p.script.createCachedData();
      const header = Buffer.alloc(HEADER);
      header.writeUInt32LE(MAGIC, 0);
      header.writeDoubleLE(p.size, 8);
      header.writeDoubleLE(p.mtimeMs, 16);
      const tmp = `${p.file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, Buffer.concat([header, data]), { mode: 0o600 });
      fs.renameSync(tmp, p.file);
      written++;
    } catch (err) {
      error ??= (err as Error).message;
    }
  }
  stats.written += written;
  if (written > 0) {
    try {
      prune();
    } catch {
      // an entry or folder that cannot be removed stays; it is never read for another file
    }
  }
  return error ? { written, error } : { written };
}

/**
 * Removes what an upgrade left behind: entries whose file is gone from the bundle (chunk names
 * change with their content) and the folders of other node versions beside this one.
 */
function prune(): void {
  const dir = stats.dir;
  if (!dir || !scopeDir) return;
  const scope = scopeDir;
  const live = new Set<string>();
  for (const d of [scope, join(scope, 'chunks')]) {
    for (const f of safeList(d)) live.add(`${f}.cache`);
  }
  for (const f of safeList(dir)) {
    if (f.endsWith('.cache') && !live.has(f)) fs.rmSync(join(dir, f), { force: true });
  }
  const parent = dirname(dir);
  for (const f of safeList(parent)) {
    if (/^node-v[\d.]+-\w+$/.test(f) && f !== basename(dir)) {
      fs.rmSync(join(parent, f), { recursive: true, force: true });
    }
  }
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

export function compileCacheStats(): CompileCacheStats {
  return { ...stats };
}
