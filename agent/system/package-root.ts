import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder of the Outpost package this code runs from, and its package.json. The same module
 * runs from three places: the sources (`agent/system/`, under tsx in tests), the repository's
 * build (`dist/agent/system/`) and an installed tarball (`node_modules/outpost-agent/dist/...`).
 * The depth differs, so instead of a fixed `../..` this walks up to the first package.json that
 * names an Outpost package: the systemd units, the built addons and the version are found next
 * to it in every layout.
 */
const NAMES = new Set(['outpost', 'outpost-agent']);

export interface PackageInfo {
  root: string;
  name: string;
  version: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name && NAMES.has(pkg.name) && pkg.version) {
        cached = { root: dir, name: pkg.name, version: pkg.version };
        return cached;
      }
    } catch {
      // no (readable) package.json here: keep going up
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Copied out of any package (never by npm or the build): say so instead of inventing a version.
  cached = { root: dirname(fileURLToPath(import.meta.url)), name: 'outpost-agent', version: '0.0.0-unpackaged' };
  return cached;
}
