import { createPrivateKey, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { parseRoot } from '../../protocol/trust-root.js';
import type { ClusterSecrets } from './store.js';

/** The names (and old file paths under the data dir) of the cluster's shared state. */
export const LEGACY_KEY = 'signing/desired.key';
export const ONLINE_PREFIX = 'signing/online/';
export const ROOT_PREFIX = 'signing/roots/';
export const CREDENTIAL_KEY = 'broker/device-credentials.key';

export const onlineKeyName = (keyid: string) => `${ONLINE_PREFIX}${keyid}.key`;
export const rootName = (version: number) => `${ROOT_PREFIX}${version}.root.json`;
export const ONLINE_RE = /^signing\/online\/([0-9a-f]{64})\.key$/;
export const ROOT_RE = /^signing\/roots\/(\d+)\.root\.json$/;

/** A PEM that must be an ed25519 private key; `where` names it in the error. */
export function parseEd25519Pem(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new OutpostError(
      'SIGNING_KEY_INVALID',
      `the signing key ${where} is not a PEM private key: ${(err as Error).message}`,
      {
        path: where,
      },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new OutpostError('SIGNING_KEY_INVALID', `the signing key ${where} is ${key.asymmetricKeyType}, not ed25519`, {
      path: where,
    });
  return key;
}

export function parseCredentialKey(text: string, where: string): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== 32) throw new Error(`${where} does not hold a 32-byte base64 key`);
  return key;
}

/**
 * Brings the key files of a data dir from before the database held them into the database, once:
 * a file whose name is absent is inserted; one that is present with the same bytes is skipped (so
 * later starts, and every replica that shares a copy of that data dir, change nothing); one that
 * differs means this data dir belonged to another cloud, and the start is refused rather than
 * silently signing with a key its devices do not trust. Files are checked before anything is
 * written (a corrupt key is refused with its code, not stored) and left in place as a backup; the
 * cloud no longer reads or writes them. Returns the names inserted.
 */
export async function importDataDir(secrets: ClusterSecrets, dataDir: string, log: Logger): Promise<string[]> {
  const files: { name: string; value: string }[] = [];
  const offer = async (name: string, check: (text: string, where: string) => unknown) => {
    const file = path.join(dataDir, ...name.split('/'));
    const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw new OutpostError('SIGNING_KEY_INVALID', `cannot read ${file}: ${err.message}`, { path: file });
    });
    if (text === null) return;
    check(text, file);
    files.push({ name, value: text });
  };
  await offer(LEGACY_KEY, parseEd25519Pem);
  for (const n of await readdirOrEmpty(path.join(dataDir, 'signing', 'online')))
    if (ONLINE_RE.test(ONLINE_PREFIX + n)) await offer(ONLINE_PREFIX + n, parseEd25519Pem);
  for (const n of await readdirOrEmpty(path.join(dataDir, 'signing', 'roots')))
    if (ROOT_RE.test(ROOT_PREFIX + n)) await offer(ROOT_PREFIX + n, (t) => parseRoot(t));
  await offer(CREDENTIAL_KEY, parseCredentialKey);
  if (files.length === 0) return [];
  const inserted = secrets.atomically((add) => {
    const done: string[] = [];
    for (const f of files) {
      if (add(f.name, f.value)) done.push(f.name);
      else if (secrets.get(f.name) !== f.value)
        throw new OutpostError(
          'CLUSTER_SECRET_CONFLICT',
          `${path.join(dataDir, f.name)} differs from the ${f.name} the database holds: this data dir belongs to another cloud`,
          { name: f.name, dataDir },
        );
    }
    return done;
  });
  if (inserted.length > 0)
    moduleLogger(log, 'secrets').info(
      { dataDir, imported: inserted },
      'imported the key files of this data dir into the database (they are no longer read; keep them as a backup)',
    );
  return inserted;
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  return fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
}
