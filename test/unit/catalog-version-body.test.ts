import { describe, expect, it } from 'vitest';
import { parseFilePath, parseVersionBody } from '../../cloud-broker/catalog/parse-version-body.js';
import { versionDigest } from '../../cloud-broker/catalog/models.js';
import { OutpostError } from '../../protocol/errors/index.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof OutpostError ? err.code : 'not-an-outpost-error';
  }
  return undefined;
}

const manifest = {
  id: 'alice/m',
  public: false,
  model_parameters: { model_file: 'model.onnx', label_file: 'labels.txt' },
};
const files = [
  { path: 'model.onnx', sha256: SHA_A, size: 10 },
  { path: 'labels.txt', sha256: SHA_B, size: 3 },
];

describe('parseVersionBody', () => {
  it('accepts a manifest with its files and sorts them by path', () => {
    const b = parseVersionBody({ manifest, files }, 'alice/m');
    expect(b.files.map((f) => f.path)).toEqual(['labels.txt', 'model.onnx']);
    expect(b.force).toBe(false);
  });

  it.each([
    ['../etc/passwd'],
    ['/abs/model.onnx'],
    ['a/../../b'],
    ['a/./b'],
    ['a//b'],
    ['a\\b'],
    [''],
    ['x\u0000y'],
    ['..'],
  ])('refuses the file path %j', (p) => {
    expect(codeOf(() => parseFilePath(p, 'path'))).toBe('CATALOG_FILE_PATH_INVALID');
    expect(
      codeOf(() => parseVersionBody({ manifest, files: [...files, { path: p, sha256: SHA_A, size: 1 }] }, 'alice/m')),
    ).toBe('CATALOG_FILE_PATH_INVALID');
  });

  it('refuses a duplicate path', () => {
    expect(codeOf(() => parseVersionBody({ manifest, files: [...files, files[0]] }, 'alice/m'))).toBe(
      'CATALOG_FILE_PATH_INVALID',
    );
  });

  it('refuses an id that differs from the URL', () => {
    expect(codeOf(() => parseVersionBody({ manifest, files }, 'bob/m'))).toBe('CATALOG_ID_MISMATCH');
    expect(
      codeOf(() => parseVersionBody({ manifest: { ...manifest, id: '<username>/<modelname>' }, files }, 'alice/m')),
    ).toBe('CATALOG_ID_MISMATCH');
  });

  it('refuses a manifest that names a file not in the list', () => {
    expect(codeOf(() => parseVersionBody({ manifest, files: [files[0]] }, 'alice/m'))).toBe('CATALOG_MANIFEST_INVALID');
  });

  it.each([
    [{ manifest: [], files }, 'CATALOG_MANIFEST_INVALID'],
    [{ manifest: { ...manifest, public: 'yes' }, files }, 'CATALOG_MANIFEST_INVALID'],
    [{ manifest, files: [] }, 'BAD_REQUEST'],
    [{ manifest, files: [{ path: 'model.onnx', sha256: 'XYZ', size: 1 }] }, 'BAD_REQUEST'],
    [{ manifest, files: [{ path: 'model.onnx', sha256: SHA_A, size: -1 }] }, 'BAD_REQUEST'],
    [{ manifest, files, force: 'yes' }, 'BAD_REQUEST'],
  ])('refuses a malformed body (%#)', (body, code) => {
    expect(codeOf(() => parseVersionBody(body, 'alice/m'))).toBe(code);
  });
});

describe('versionDigest', () => {
  it('does not depend on key order but does depend on content', () => {
    const a = versionDigest({ id: 'alice/m', public: false }, [files[0]]);
    const b = versionDigest({ public: false, id: 'alice/m' }, [{ size: 10, sha256: SHA_A, path: 'model.onnx' }]);
    expect(a).toBe(b);
    expect(versionDigest({ id: 'alice/m', public: true }, [files[0]])).not.toBe(a);
    expect(versionDigest({ id: 'alice/m', public: false }, [{ ...files[0], size: 11 }])).not.toBe(a);
  });
});
