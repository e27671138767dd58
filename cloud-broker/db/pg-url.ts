import { OutpostError } from '../../protocol/errors/index.js';

/** Whether `--database` names a PostgreSQL server (else it is a SQLite file). */
export const isPostgresUrl = (target: string): boolean => /^postgres(ql)?:\/\//i.test(target);

/**
 * Validates a `postgres://user:password@host:port/database` URL once, at the boundary (the CLI
 * flag, CloudOptions.database). The password never appears in an error, a log line or a status.
 */
export function parsePostgresUrl(text: string): string {
  const bad = (why: string): OutpostError =>
    new OutpostError(
      'CLOUD_DB_URL_INVALID',
      `--database ${redactDbUrl(text)}: ${why}; give postgres://user:password@host:5432/database`,
      { key: 'database' },
    );
  if (text.length > 2048) throw bad('longer than 2048 characters');
  if (!isPostgresUrl(text)) throw bad('the scheme must be postgres:// or postgresql://');
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  // A Unix socket folder may be given as ?host=/run/postgresql with an empty host part.
  if (!u.hostname && !u.searchParams.get('host')) throw bad('no host');
  if (u.port && !(Number(u.port) >= 1 && Number(u.port) <= 65535)) throw bad(`port ${u.port} is out of range`);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db.includes('/')) throw bad(`"${db}" is not a database name`);
  return text;
}

/** The URL with its password replaced, for messages and logs. */
export function redactDbUrl(text: string): string {
  try {
    const u = new URL(text);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Not a URL: hide whatever sits between "://user:" and "@".
    return text.replace(/(:\/\/[^/:@]*:)[^@/]*@/, '$1***@');
  }
}

/** host:port/database, for a message that says what could not be reached. */
export function describeDbUrl(text: string): string {
  try {
    const u = new URL(text);
    return `${u.hostname || u.searchParams.get('host') || 'localhost'}:${u.port || 5432}/${u.pathname.replace(/^\//, '') || u.username}`;
  } catch {
    return redactDbUrl(text);
  }
}
