import { describe, expect, it } from 'vitest';
import { parseVersionFiles, unsafePathReason } from '../../agent/store/files.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import { codeOf } from '../helpers/error-code.js';

const sha = 'a'.repeat(64);

describe('unsafePathReason', () => {
  it.each([['model.onnx'], ['sub/dir/labels.txt'], ['..hidden'], ['a..b/c'], ['.config'], ['C:x'], ['with space.bin']])(
    'accepts %j',
    (p) => expect(unsafePathReason(p)).toBeNull(),
  );

  it.each([
    ['', 'is empty'],
    ['..', '".." segment'],
    ['../x', '".." segment'],
    ['a/../../x', '".." segment'],
    ['/etc/passwd', 'absolute'],
    ['a\\b', 'backslash'],
    ['..\\x', 'backslash'],
    ['a//b', 'empty segment'],
    ['a/', 'empty segment'],
    ['./a', '"." segment'],
    ['a\0b', 'NUL'],
    [`${'x'.repeat(256)}/y`, 'longer than 255'],
  ])('refuses %j (%s)', (p, why) => expect(unsafePathReason(p)).toContain(why));
});

describe('parseVersionFiles', () => {
  it('returns a clean list and drops unknown keys', () => {
    expect(parseVersionFiles([{ path: 'm.onnx', sha256: sha, size: 3, extra: 1 }])).toEqual([
      { path: 'm.onnx', sha256: sha, size: 3 },
    ]);
  });

  it('names the bad key and value', () => {
    try {
      parseVersionFiles([
        { path: 'ok', sha256: sha, size: 1 },
        { path: '../x', sha256: sha, size: 1 },
      ]);
    } catch (err) {
      expect((err as OutpostError).code).toBe('STORE_PATH_INVALID');
      expect((err as OutpostError).message).toContain('files[1].path "../x"');
      expect((err as OutpostError).details).toEqual({ key: 'files[1].path', value: '../x' });
      return;
    }
    throw new Error('expected a throw');
  });

  it('refuses duplicates, file/folder clashes, bad hashes and sizes', () => {
    expect(
      codeOf(() =>
        parseVersionFiles([
          { path: 'a', sha256: sha, size: 1 },
          { path: 'a', sha256: sha, size: 1 },
        ]),
      ),
    ).toBe('STORE_PATH_INVALID');
    expect(
      codeOf(() =>
        parseVersionFiles([
          { path: 'a/b', sha256: sha, size: 1 },
          { path: 'a', sha256: sha, size: 1 },
        ]),
      ),
    ).toBe('STORE_PATH_INVALID');
    expect(codeOf(() => parseVersionFiles([{ path: 'a', sha256: sha.toUpperCase(), size: 1 }]))).toBe(
      'STORE_INVALID_ARGUMENT',
    );
    expect(codeOf(() => parseVersionFiles([{ path: 'a', sha256: sha, size: -1 }]))).toBe('STORE_INVALID_ARGUMENT');
    expect(codeOf(() => parseVersionFiles([{ path: 'a', sha256: sha, size: 1.5 }]))).toBe('STORE_INVALID_ARGUMENT');
    expect(codeOf(() => parseVersionFiles([{ path: 7, sha256: sha, size: 1 }]))).toBe('STORE_PATH_INVALID');
    expect(codeOf(() => parseVersionFiles('nope'))).toBe('STORE_INVALID_ARGUMENT');
    expect(codeOf(() => parseVersionFiles([null]))).toBe('STORE_INVALID_ARGUMENT');
  });
});
