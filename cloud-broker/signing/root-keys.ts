import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Signature } from '@tufjs/models';
import { writeFileAtomic } from '../../agent/fs/atomic-file.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { keyIdOf } from '../../protocol/signing.js';
import type { RootMetadata } from '../../protocol/trust-root.js';

/**
 * Root keys on the operator's side: one PKCS#8 PEM file per key, `root-<keyid>.key`, mode 0600 in
 * a 0700 folder that the operator moves offline (a USB stick, a safe) after `outpost keys init`.
 * The cloud never sees these files; the CLI signs roots with them and sends only signatures.
 */
export interface RootKey {
  keyid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const FILE = /^root-([0-9a-f]{64})\.key$/;

export function generateRootKey(): RootKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyid: keyIdOf(publicKey), privateKey, publicKey };
}

/** Writes each key into `dir` (created 0700); refuses to overwrite an existing key file. */
export async function writeRootKeys(dir: string, keys: readonly RootKey[]): Promise<string[]> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (const k of keys) {
    const file = path.join(dir, `root-${k.keyid}.key`);
    const exists = await fs.stat(file).then(
      () => true,
      () => false,
    );
    if (exists)
      throw new OutpostError('BAD_REQUEST', `${file} exists; refusing to overwrite a root key`, { path: file });
    await writeFileAtomic(file, k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
    files.push(file);
  }
  return files;
}

/** Every root key file in the folders (a missing folder holds none); the keyid is recomputed, never trusted from the name. */
export async function readRootKeys(dirs: readonly string[]): Promise<Map<string, RootKey>> {
  const out = new Map<string, RootKey>();
  for (const dir of dirs) {
    const names = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names) {
      if (!FILE.test(name)) continue;
      const file = path.join(dir, name);
      let privateKey: KeyObject;
      try {
        privateKey = createPrivateKey(await fs.readFile(file, 'utf8'));
      } catch (err) {
        throw new OutpostError('SIGNING_KEY_INVALID', `${file} is not a PEM private key: ${(err as Error).message}`, {
          path: file,
        });
      }
      if (privateKey.asymmetricKeyType !== 'ed25519')
        throw new OutpostError('SIGNING_KEY_INVALID', `${file} is not an ed25519 key`, { path: file });
      const publicKey = createPublicKey(privateKey);
      out.set(keyIdOf(publicKey), { keyid: keyIdOf(publicKey), privateKey, publicKey });
    }
  }
  return out;
}

/** Adds one TUF signature (hex ed25519 over the canonical signed part, as @tufjs/models verifies it). */
export function signRoot(root: RootMetadata, key: { keyid: string; privateKey: KeyObject }): void {
  root.sign((bytes) => new Signature({ keyID: key.keyid, sig: sign(null, bytes, key.privateKey).toString('hex') }));
}
