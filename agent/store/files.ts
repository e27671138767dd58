import { OutpostError } from '../../protocol/errors/index.js';

/** One file of a model version, as the signed metadata lists it. */
export interface VersionFile {
  /** Relative POSIX path inside the version folder. */
  path: string;
  sha256: string;
  size: number;
}

const SHA256 = /^[0-9a-f]{64}$/;
const MAX_PATH = 1024;
const MAX_SEGMENT = 255;

/**
 * Why a metadata path is unsafe, or null. Only plain relative POSIX paths pass: the path is joined
 * under the staging folder, so anything that could climb out of it (`..`, an absolute path), be
 * read differently by another tool (backslash), or name the folder itself (`.`, empty segments)
 * is refused before a single byte is written.
 */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0) return 'is empty';
  if (path.length > MAX_PATH) return `is longer than ${MAX_PATH} characters`;
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  for (const seg of path.split('/')) {
    if (seg === '') return 'has an empty segment';
    if (seg === '.' || seg === '..') return `has a "${seg}" segment`;
    if (Buffer.byteLength(seg) > MAX_SEGMENT) return `has a segment longer than ${MAX_SEGMENT} bytes`;
  }
  return null;
}

/** Validates a version's file list at the store's edge; throws STORE_PATH_INVALID / STORE_INVALID_ARGUMENT. */
export function parseVersionFiles(value: unknown): VersionFile[] {
  if (!Array.isArray(value))
    throw new OutpostError('STORE_INVALID_ARGUMENT', 'files must be an array of {path, sha256, size}', {
      key: 'files',
    });
  const seen = new Set<string>();
  const out: VersionFile[] = [];
  value.forEach((f: unknown, i) => {
    const key = `files[${i}]`;
    const o = f as Partial<VersionFile> | null;
    if (!o || typeof o !== 'object')
      throw new OutpostError('STORE_INVALID_ARGUMENT', `${key} must be an object {path, sha256, size}`, { key });
    if (typeof o.path !== 'string')
      throw new OutpostError('STORE_PATH_INVALID', `${key}.path must be a string`, { key: `${key}.path` });
    const why = unsafePathReason(o.path);
    if (why)
      throw new OutpostError(
        'STORE_PATH_INVALID',
        `${key}.path ${JSON.stringify(o.path)} ${why}; only relative POSIX paths are installed`,
        { key: `${key}.path`, value: o.path },
      );
    if (typeof o.sha256 !== 'string' || !SHA256.test(o.sha256)) {
      throw new OutpostError('STORE_INVALID_ARGUMENT', `${key}.sha256 must be 64 lowercase hex digits`, {
        key: `${key}.sha256`,
        value: o.sha256,
      });
    }
    if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) {
      throw new OutpostError('STORE_INVALID_ARGUMENT', `${key}.size must be a non-negative integer`, {
        key: `${key}.size`,
        value: o.size,
      });
    }
    if (seen.has(o.path))
      throw new OutpostError('STORE_PATH_INVALID', `${key}.path ${JSON.stringify(o.path)} is listed twice`, {
        key: `${key}.path`,
        value: o.path,
      });
    seen.add(o.path);
    out.push({ path: o.path, sha256: o.sha256, size: o.size });
  });
  // "a" as a file and "a/b" as another file cannot both exist.
  for (const p of seen) {
    const segs = p.split('/');
    for (let i = 1; i < segs.length; i++) {
      const dir = segs.slice(0, i).join('/');
      if (seen.has(dir))
        throw new OutpostError(
          'STORE_PATH_INVALID',
          `path ${JSON.stringify(dir)} is both a file and the folder of ${JSON.stringify(p)}`,
          { key: 'files', value: dir },
        );
    }
  }
  return out;
}
