import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blobUrlOf, isSafeRelativePath, verifyDesired, type DesiredSigned } from '../../protocol/desired-state.js';
import { createSigner } from '../../cloud-broker/signing/sign.js';

const cloud = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return createSigner(privateKey, publicKey);
})();
const NOW = new Date('2026-06-01T12:00:00Z');
const SHA = 'a'.repeat(64);

function signedDoc(over: Partial<DesiredSigned> = {}): DesiredSigned {
  return {
    type: 'desired',
    device: 'dev-1',
    revision: 5,
    issued: '2026-06-01T11:00:00Z',
    expires: '2026-06-08T11:00:00Z',
    models: [
      {
        id: 'alice/detector',
        version: 2,
        framework: 'onnx',
        purpose: 'ObjectDetection',
        files: [
          { path: 'model.onnx', sha256: SHA, size: 10 },
          { path: 'labels/labels.txt', sha256: SHA, size: 3 },
        ],
      },
    ],
    ...over,
  };
}

const opts = { trustedKeys: [cloud.trustedKey()], deviceId: 'dev-1', now: NOW, lastRevision: 4 as number | null };

function rejection(doc: unknown, o = opts): string | undefined {
  try {
    verifyDesired(doc, o);
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'accepted';
}

describe('verifyDesired', () => {
  it('accepts a good document from the wire bytes and returns its content and keyid', () => {
    const wire = Buffer.from(JSON.stringify(cloud.sign(signedDoc())));
    const d = verifyDesired(wire, opts);
    expect(d.revision).toBe(5);
    expect(d.models[0].files.map((f) => f.path)).toEqual(['model.onnx', 'labels/labels.txt']);
    expect(d.keyid).toBe(cloud.keyid);
  });

  it('accepts the same revision again (retained re-delivery) and the first one ever', () => {
    expect(rejection(cloud.sign(signedDoc()), { ...opts, lastRevision: 5 })).toBe('accepted');
    expect(rejection(cloud.sign(signedDoc()), { ...opts, lastRevision: null })).toBe('accepted');
  });

  it('bad signature: the signed content changed after signing', () => {
    const env = cloud.sign(signedDoc());
    const tampered = JSON.parse(JSON.stringify(env));
    tampered.signed.models[0].files[0].sha256 = 'b'.repeat(64);
    expect(rejection(tampered)).toBe('DESIRED_BAD_SIGNATURE');
  });

  it('untrusted key: signed by a key the device does not trust', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    expect(rejection(createSigner(privateKey, publicKey).sign(signedDoc()))).toBe('DESIRED_UNTRUSTED_KEY');
  });

  it('rollback: a replayed older revision', () => {
    expect(rejection(cloud.sign(signedDoc({ revision: 3 })))).toBe('DESIRED_ROLLBACK');
  });

  it('freeze: an expired document, even when correctly signed', () => {
    expect(rejection(cloud.sign(signedDoc({ expires: '2026-06-01T12:00:00Z' })))).toBe('DESIRED_EXPIRED');
    expect(rejection(cloud.sign(signedDoc({ expires: '2026-06-01T13:00:00+02:00' })))).toBe('DESIRED_EXPIRED');
  });

  it('a document for another device', () => {
    expect(rejection(cloud.sign(signedDoc({ device: 'dev-2' })))).toBe('DESIRED_WRONG_DEVICE');
  });

  it.each(['../etc/passwd', '/etc/passwd', 'a/../../b', 'a//b', './a', 'a\\..\\b', 'C:/x', '', 'a/'])(
    'unsafe path %j',
    (p) => {
      const doc = signedDoc();
      doc.models[0].files[0].path = p;
      expect(rejection(cloud.sign(doc))).toBe('DESIRED_UNSAFE_PATH');
    },
  );

  it.each([
    ['not JSON', Buffer.from('{nope')],
    ['not an object', 42],
    ['no signatures', { signed: signedDoc(), signatures: [] }],
    ['signature without keyid', { signed: signedDoc(), signatures: [{ sig: 'AAAA' }] }],
    [
      'a fraction inside signed',
      { signed: { ...signedDoc(), revision: 5.5 }, signatures: [{ keyid: 'a'.repeat(64), sig: 'AAAA' }] },
    ],
  ])('malformed envelope: %s', (_name, doc) => {
    expect(rejection(doc)).toBe('DESIRED_MALFORMED');
  });

  it.each<[string, (d: Record<string, any>) => void]>([
    [
      'wrong type',
      (d) => {
        d.type = 'reported';
      },
    ],
    [
      'negative size',
      (d) => {
        d.models[0].files[0].size = -1;
      },
    ],
    [
      'bad sha256',
      (d) => {
        d.models[0].files[0].sha256 = 'XYZ';
      },
    ],
    [
      'unknown framework',
      (d) => {
        d.models[0].framework = 'keras';
      },
    ],
    [
      'bad model id',
      (d) => {
        d.models[0].id = 'no-owner';
      },
    ],
    [
      'duplicate file path',
      (d) => {
        d.models[0].files[1].path = 'model.onnx';
      },
    ],
    [
      'duplicate model',
      (d) => {
        d.models.push(d.models[0]);
      },
    ],
    [
      'bad expiry',
      (d) => {
        d.expires = 'next week';
      },
    ],
    [
      'unknown key',
      (d) => {
        d.extra = 1;
      },
    ],
    [
      'blobBase not a URL',
      (d) => {
        d.models[0].blobBase = 'file:///etc/';
      },
    ],
  ])('malformed signed content (correctly signed): %s', (_name, mutate) => {
    const doc = signedDoc() as unknown as Record<string, any>;
    mutate(doc);
    expect(rejection(cloud.sign(doc))).toBe('DESIRED_MALFORMED');
  });

  it('blob URLs come from blobBase or the default base', () => {
    const m = signedDoc().models[0];
    expect(blobUrlOf(m, m.files[0], 'http://cloud:8080/v1/blobs')).toBe(`http://cloud:8080/v1/blobs/${SHA}`);
    expect(blobUrlOf({ ...m, blobBase: 'https://cdn.example/b/' }, m.files[0], 'x')).toBe(
      `https://cdn.example/b/${SHA}`,
    );
  });

  it('isSafeRelativePath accepts nested relative paths', () => {
    expect(isSafeRelativePath('a/b/c.txt')).toBe(true);
    expect(isSafeRelativePath('..a')).toBe(true);
  });
});
