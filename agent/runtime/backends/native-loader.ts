import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageInfo } from '../../system/package-root.js';

/**
 * Loads Outpost's native addons (`build/addons/Release/<name>.node`, built by
 * `npm run build:addons`) lazily and never throws: every place tried and every load error is
 * collected into one reason an operator can act on, as sharp's loader does. An addon is loaded at
 * most once per process (Node caches dlopen anyway); the outcome is cached here too.
 */
export type AddonName =
  | 'outpost_opencv_dnn'
  | 'outpost_image'
  | 'outpost_shm'
  | 'outpost_tensorrt'
  | 'outpost_hailort'
  | 'outpost_openvino';

export type AddonLoad<T> = { ok: true; binding: T; path: string } | { ok: false; reason: string };

const cache = new Map<string, AddonLoad<unknown>>();

/**
 * Where an addon may be: $OUTPOST_ADDON_DIR first, then the cmake-js output folders under the
 * package's root (the repository's build/, or the one the device package's postinstall wrote).
 */
export function addonDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const root = packageInfo().root;
  const dirs = [join(root, 'build', 'addons', 'Release'), join(root, 'build', 'addons')];
  return env.OUTPOST_ADDON_DIR ? [env.OUTPOST_ADDON_DIR, ...dirs] : dirs;
}

export function loadAddon<T>(name: AddonName, dirs: readonly string[] = addonDirs()): AddonLoad<T> {
  const hit = loadedAddon<T>(name, dirs);
  if (hit) return hit;
  const result = tryLoad<T>(name, dirs);
  cache.set(`${name}\0${dirs.join('\0')}`, result);
  return result;
}

/** The outcome of an earlier loadAddon(name, dirs), or undefined when none was tried: never loads. */
export function loadedAddon<T>(name: AddonName, dirs: readonly string[] = addonDirs()): AddonLoad<T> | undefined {
  return cache.get(`${name}\0${dirs.join('\0')}`) as AddonLoad<T> | undefined;
}

function tryLoad<T>(name: AddonName, dirs: readonly string[]): AddonLoad<T> {
  const req = createRequire(import.meta.url);
  const problems: string[] = [];
  for (const dir of dirs) {
    const file = join(dir, `${name}.node`);
    if (!existsSync(file)) continue;
    try {
      const binding = req(file) as T & { abi?: number };
      if (binding.abi !== 1) {
        problems.push(
          `${file}: built from another Outpost version (abi ${String(binding.abi)}); run npm run build:addons`,
        );
        continue;
      }
      return { ok: true, binding, path: file };
    } catch (err) {
      // A missing vendor library shows up here as a dlopen error naming the .so.
      problems.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (problems.length === 0) return { ok: false, reason: notBuiltReason(name, dirs) };
  return { ok: false, reason: `${name}.node did not load: ${problems.join('; ')}` };
}

export function notBuiltReason(name: AddonName, dirs: readonly string[] = addonDirs()): string {
  return `${name}.node is not built (looked in ${dirs.join(', ')}); run npm run build:addons on a machine with the SDK`;
}

/** The file the loader would try first, without loading it; null when no place has it. */
export function findAddon(name: AddonName, dirs: readonly string[] = addonDirs()): string | null {
  for (const dir of dirs) {
    const file = join(dir, `${name}.node`);
    if (existsSync(file)) return file;
  }
  return null;
}

/** Runs a native call and turns its {code, message} rejection into an OutpostError. */
export async function native<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const { toOutpostError } = await import('../../../protocol/errors/index.js');
    throw toOutpostError(err);
  }
}
