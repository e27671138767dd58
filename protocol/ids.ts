import { OutpostError } from './errors/index.js';

/**
 * Model ids are `owner/name`. Both parts are lower-or-upper case letters, digits, `-`, `_` and
 * `.`, start with a letter or digit and are at most 64 characters, so an id is always a safe
 * relative path of exactly two segments (no `..`, no slashes, no spaces).
 */
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ModelId {
  owner: string;
  name: string;
}

export function isModelIdPart(s: string): boolean {
  return PART.test(s) && s !== '.' && s !== '..' && !s.includes('..');
}

export function parseModelId(value: unknown, key = 'id'): ModelId {
  if (typeof value !== 'string') {
    throw new OutpostError('BAD_REQUEST', `${key} must be a string "owner/name"`, { key });
  }
  const parts = value.split('/');
  if (parts.length !== 2 || !isModelIdPart(parts[0]) || !isModelIdPart(parts[1])) {
    throw new OutpostError('BAD_REQUEST', `${key} "${value}" is not "owner/name" (letters, digits, . _ -)`, {
      key,
      value,
    });
  }
  return { owner: parts[0], name: parts[1] };
}

export function formatModelId(id: ModelId): string {
  return `${id.owner}/${id.name}`;
}

/** Versions are positive integers that only grow. */
export function parseVersion(value: unknown, key = 'version'): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw new OutpostError('BAD_REQUEST', `${key} must be a positive integer, got ${JSON.stringify(value)}`, {
      key,
      value,
    });
  }
  return n;
}

/** `owner/name` or `owner/name@3`. */
export function parseModelRef(value: string, key = 'model'): ModelId & { version?: number } {
  const at = value.lastIndexOf('@');
  if (at === -1) return parseModelId(value, key);
  return { ...parseModelId(value.slice(0, at), key), version: parseVersion(value.slice(at + 1), `${key} version`) };
}
