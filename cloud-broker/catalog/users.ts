import { OutpostError } from '../../protocol/errors/index.js';
import { isModelIdPart } from '../../protocol/ids.js';
import { createToken } from '../auth/index.js';
import type { CreatedUser } from '../client/types.js';
import type { Db } from '../db/open.js';

/** Validates `{name}`: a user name is an id's owner part, so it follows the same rules. */
export function parseUserName(body: unknown): string {
  const name = (body as Record<string, unknown>).name;
  if (typeof name !== 'string' || !isModelIdPart(name) || name === 'admin') {
    throw new OutpostError(
      'BAD_REQUEST',
      `name ${JSON.stringify(name)} is not a user name (letters, digits, . _ -, at most 64, not "admin")`,
      { key: 'name', value: name },
    );
  }
  return name;
}

/** Creates the user and its first token in one transaction. */
export function createUser(db: Db, name: string): CreatedUser {
  return db
    .transaction((): CreatedUser => {
      const exists = db.prepare('SELECT 1 FROM users WHERE name = ?').get(name);
      if (exists)
        throw new OutpostError('CATALOG_USER_EXISTS', `user "${name}" already exists; pick another name`, { name });
      db.prepare('INSERT INTO users (name, created_at) VALUES (?, ?)').run(name, new Date().toISOString());
      return { name, token: createToken(db, 'user', name) };
    })
    .immediate();
}
