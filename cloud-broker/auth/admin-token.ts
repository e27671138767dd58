import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../protocol/log.js';
import { writeFileAtomic } from '../../agent/fs/atomic-file.js';
import type { Db } from '../db/open.js';
import { createToken, hashToken, insertTokenHash } from './tokens.js';

export const ADMIN_TOKEN_FILE = 'admin.token';

/**
 * Makes sure `<dataDir>/admin.token` (mode 0600) holds a valid admin token and returns its path.
 * At first start a token is created. If the file exists its token is (re-)registered, so a data
 * dir whose database was restored from a backup keeps working with the token on disk.
 */
export async function ensureAdminToken(db: Db, dataDir: string, log: Logger): Promise<string> {
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  let existing: string | null = null;
  try {
    existing = (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing) {
    insertTokenHash(db, hashToken(existing), 'admin', 'admin');
    // Tighten a file someone loosened: the token is full control over the cloud.
    await fs.chmod(file, 0o600);
    return file;
  }
  const token = createToken(db, 'admin', 'admin');
  await writeFileAtomic(file, token + '\n', { mode: 0o600 });
  log.info({ file }, 'admin token created');
  return file;
}
