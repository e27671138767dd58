import { OutpostError } from '../../protocol/errors/index.js';
import type { VersionFile } from '../../protocol/manifest-types.js';
import { SHA256_HEX } from '../artifacts/blob-store.js';

export interface VersionBody {
  manifest: Record<string, unknown>;
  /** Sorted by path, so the digest does not depend on the order the client listed them in. */
  files: VersionFile[];
  force: boolean;
}

export const MAX_FILES = 10_000;
const MAX_PATH = 1024;
// The manifest keys that name files of the model folder (seed: Working with Models).
const FILE_KEYS = ['model_file', 'config_file', 'label_file', 'colors_file'] as const;

/**
 * Validates the body of `POST /v1/models/:owner/:name/versions` for the model `owner/name`.
 * Blob presence is checked afterwards against the store (it needs I/O).
 */
export function parseVersionBody(body: unknown, id: string): VersionBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new OutpostError('BAD_REQUEST', 'the body must be {manifest, files, force?}', { key: 'body' });
  const b = body as Record<string, unknown>;
  const manifest = b.manifest;
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
    throw new OutpostError('CATALOG_MANIFEST_INVALID', 'manifest must be the alwaysai.model.json object', {
      key: 'manifest',
    });
  }
  const m = manifest as Record<string, unknown>;
  if (m.id !== id) {
    throw new OutpostError(
      'CATALOG_ID_MISMATCH',
      `manifest id ${JSON.stringify(m.id)} differs from the model "${id}" in the URL; set "id": "${id}" in alwaysai.model.json`,
      { key: 'manifest.id', value: m.id, expected: id },
    );
  }
  if (m.public !== undefined && typeof m.public !== 'boolean') {
    throw new OutpostError(
      'CATALOG_MANIFEST_INVALID',
      `manifest.public must be true or false, got ${JSON.stringify(m.public)}`,
      { key: 'manifest.public', value: m.public },
    );
  }
  if (b.force !== undefined && typeof b.force !== 'boolean') {
    throw new OutpostError('BAD_REQUEST', `force must be true or false, got ${JSON.stringify(b.force)}`, {
      key: 'force',
      value: b.force,
    });
  }
  if (!Array.isArray(b.files) || b.files.length === 0 || b.files.length > MAX_FILES) {
    throw new OutpostError('BAD_REQUEST', `files must be a list of 1 to ${MAX_FILES} {path, sha256, size} entries`, {
      key: 'files',
    });
  }
  const seen = new Set<string>();
  const files = b.files.map((f: unknown, i: number): VersionFile => {
    const e = f as Record<string, unknown> | null;
    const key = `files[${i}]`;
    if (e === null || typeof e !== 'object')
      throw new OutpostError('BAD_REQUEST', `${key} must be {path, sha256, size}`, { key });
    const p = parseFilePath(e.path, `${key}.path`);
    if (seen.has(p))
      throw new OutpostError('CATALOG_FILE_PATH_INVALID', `${key}.path "${p}" is listed twice`, {
        key: `${key}.path`,
        value: p,
      });
    seen.add(p);
    if (typeof e.sha256 !== 'string' || !SHA256_HEX.test(e.sha256)) {
      throw new OutpostError(
        'BAD_REQUEST',
        `${key}.sha256 must be 64 lowercase hex characters, got ${JSON.stringify(e.sha256)}`,
        { key: `${key}.sha256`, value: e.sha256 },
      );
    }
    if (typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) {
      throw new OutpostError(
        'BAD_REQUEST',
        `${key}.size must be a non-negative integer, got ${JSON.stringify(e.size)}`,
        { key: `${key}.size`, value: e.size },
      );
    }
    return { path: p, sha256: e.sha256, size: e.size };
  });
  // Every file the manifest names must travel with the version, or a device gets a broken model.
  const params = (m.model_parameters ?? {}) as Record<string, unknown>;
  for (const k of FILE_KEYS) {
    const v = params[k] ?? m[k];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string')
      throw new OutpostError(
        'CATALOG_MANIFEST_INVALID',
        `manifest ${k} must be a file path, got ${JSON.stringify(v)}`,
        { key: k, value: v },
      );
    const p = parseFilePath(v.replace(/^(\.\/)+/, ''), `manifest ${k}`);
    if (!seen.has(p))
      throw new OutpostError(
        'CATALOG_MANIFEST_INVALID',
        `manifest ${k} "${v}" is not among the uploaded files; publish it with the model`,
        { key: k, value: v },
      );
  }
  files.sort((a, c) => (a.path < c.path ? -1 : a.path > c.path ? 1 : 0));
  return { manifest: m, files, force: b.force === true };
}

/** A relative POSIX path inside the model folder: no `/` start, no `..` or `.` segments, no `\`. */
export function parseFilePath(value: unknown, key: string): string {
  const bad = (why: string): never => {
    throw new OutpostError(
      'CATALOG_FILE_PATH_INVALID',
      `${key} ${JSON.stringify(value)} ${why}; use a path relative to the model folder like "model.onnx" or "labels/labels.txt"`,
      { key, value },
    );
  };
  if (typeof value !== 'string' || value.length === 0) return bad('is not a path');
  if (value.length > MAX_PATH) return bad(`is longer than ${MAX_PATH} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
  if (/[\u0000-\u001f\\]/.test(value)) return bad('contains a backslash or a control character');
  if (value.startsWith('/')) return bad('is absolute');
  for (const seg of value.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return bad('has an empty, "." or ".." segment');
  }
  return value;
}
