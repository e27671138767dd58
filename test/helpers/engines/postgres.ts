import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { closedPort } from '../daemon-process.js';
import { type ServiceProcess, startService } from './service.js';

/**
 * A throw-away PostgreSQL cluster from Debian's `postgresql` package: initdb into a folder of the
 * test, the server on a free loopback port with its Unix socket in that folder, trust auth for the
 * one database user. PostgreSQL refuses to run as root, so under root both run as the `postgres`
 * system user (the child's uid is set by spawn, so the PID kept is the server's own).
 */
export interface Postgres {
  readonly url: string;
  readonly port: number;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

/** The newest installed server's bin folder, or null. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : null;
}

export function missingPostgres(): string | null {
  return postgresBinDir() ? null : 'PostgreSQL server is not installed (apt-get install postgresql)';
}

function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = execFileSync('getent', ['passwd', 'postgres']).toString().trim().split(':');
  return { uid: Number(line[2]), gid: Number(line[3]) };
}

/** `settings`: more server arguments, e.g. ['-c', 'shared_preload_libraries=pg_stat_statements']. */
export async function startPostgres(dir: string, database = 'outpost', settings: string[] = []): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(missingPostgres()!);
  const ids = runAs();
  const data = join(dir, 'pgdata');
  const sock = join(dir, 'pgsock');
  await mkdir(sock, { recursive: true });
  if (ids) {
    await chown(dir, ids.uid, ids.gid);
    await chown(sock, ids.uid, ids.gid);
  }
  const user = 'outpost';
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', user, '--auth=trust', '-E', 'UTF8', '--no-sync'], {
    stdio: 'pipe',
    ...ids,
  });
  const port = await closedPort();
  // fsync off: the tests need a real server, not a durable one, and the machine is shared.
  const proc = await startService(
    'postgres',
    join(bin, 'postgres'),
    ['-D', data, '-p', String(port), '-k', sock, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', ...settings],
    port,
    { ...ids, cwd: dir },
  );
  await acceptingConnections(bin, port, user, ids);
  execFileSync(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', user, database], {
    stdio: 'pipe',
    ...ids,
  });
  return {
    url: `postgres://${user}@127.0.0.1:${port}/${database}`,
    port,
    process: proc,
    stop: () => proc.stop(),
  };
}

/**
 * The port opens before the server accepts sessions: until its startup process has finished,
 * PostgreSQL answers "the database system is starting up" (createdb failed that way on a loaded
 * machine). pg_isready exits 0 once it accepts, 1 while it refuses (starting up), 2 for no answer.
 */
async function acceptingConnections(
  bin: string,
  port: number,
  user: string,
  ids: { uid: number; gid: number } | undefined,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = spawnSync(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port), '-U', user], {
      stdio: 'ignore',
      ...ids,
    });
    if (r.status === 0) return;
    if (Date.now() > deadline)
      throw new Error(`PostgreSQL on ${port} did not accept connections within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export const currentUser = (): string => os.userInfo().username;
