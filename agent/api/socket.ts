import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { OutpostError } from '../../protocol/errors/index.js';

/**
 * The Unix socket file's lifecycle. Two rules: a stale file left by a dead agent is removed, but
 * a file that a live process answers on is never stolen (two agents would split the clients);
 * and the file is never connectable with looser permissions than `mode`.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new OutpostError('API_SOCKET_FAILED', `cannot inspect the socket path ${path}: ${(err as Error).message}`, {
      path,
    });
  }
  if (!isSocket) {
    throw new OutpostError(
      'API_SOCKET_FAILED',
      `${path} exists and is not a socket; remove it or set another socket path`,
      { path },
    );
  }
  if (await answers(path)) {
    throw new OutpostError(
      'API_SOCKET_IN_USE',
      `another process is listening on ${path}; stop it (is another agent running?) or use another socket path`,
      { path },
    );
  }
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT')
      throw new OutpostError('API_SOCKET_FAILED', `cannot remove the stale socket ${path}: ${err.message}`, { path });
  });
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    // ECONNREFUSED (nobody listens) and ENOENT mean stale; EACCES means someone else's socket we
    // cannot probe: treat as alive, since stealing it is the worse mistake.
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'EACCES' || e.code === 'EPERM'));
    s.setTimeout(2_000, () => done(true));
  });
}

/**
 * Binds with a umask that already yields `mode`, then chmods to exactly `mode`. Node binds a
 * pipe synchronously inside listen(), so the umask change covers the bind and nothing else in
 * this process runs in between; no client can connect while the file is still wider than mode.
 */
export async function listenOnSocket(server: Server, path: string, mode: number): Promise<void> {
  await prepareSocketPath(path);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(
        err.code === 'EADDRINUSE'
          ? new OutpostError('API_SOCKET_IN_USE', `another process took ${path} while the agent started`, { path })
          : new OutpostError('API_SOCKET_FAILED', `cannot listen on ${path}: ${err.message}`, { path }),
      );
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError).once('listening', onListening);
    const old = process.umask(0o777 & ~mode);
    try {
      server.listen(path);
    } finally {
      process.umask(old);
    }
  });
  await chmod(path, mode);
}
