import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../agent/fs/atomic-file.js';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { createSigner, type Signer } from './sign.js';

/**
 * The cloud's ed25519 signing key lives in `<dataDir>/signing/desired.key` (PKCS#8 PEM, mode 0600,
 * directory 0700), generated at first start. Its public half goes into every agent.json that
 * `device provision` writes. Rotation (a second key trusted by devices before the first is
 * retired) is the documented next step in docs/security.md; the file layout leaves room for it.
 */
export const SIGNING_KEY_FILE = path.join('signing', 'desired.key');

export async function loadOrCreateSigner(dataDir: string, log: Logger): Promise<Signer> {
  const file = path.join(dataDir, SIGNING_KEY_FILE);
  let pem: string | null = null;
  try {
    pem = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new OutpostError('SIGNING_KEY_INVALID', `cannot read the signing key ${file}: ${(err as Error).message}`, {
        path: file,
      });
    }
  }
  if (pem === null) {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFileAtomic(file, pem, { mode: 0o600 });
    log.info({ path: file }, 'generated the desired-state signing key');
  }
  let priv: KeyObject;
  try {
    priv = createPrivateKey(pem);
  } catch (err) {
    throw new OutpostError(
      'SIGNING_KEY_INVALID',
      `the signing key ${file} is not a PEM private key: ${(err as Error).message}`,
      { path: file },
    );
  }
  if (priv.asymmetricKeyType !== 'ed25519') {
    throw new OutpostError('SIGNING_KEY_INVALID', `the signing key ${file} is ${priv.asymmetricKeyType}, not ed25519`, {
      path: file,
    });
  }
  const signer = createSigner(priv, createPublicKey(priv));
  log.info({ keyid: signer.keyid }, 'desired-state signing key loaded');
  return signer;
}
