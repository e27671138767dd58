import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closedPort } from '../daemon-process.js';
import { missingCommand } from '../requires.js';
import { type ServiceProcess, startService } from './service.js';

/**
 * nginx 1.22 serving a blob folder as a plain mirror (static files, Range on by default), on a free
 * loopback port, in the foreground with every path (pid, logs, temp) inside the test's folder.
 */
export interface Nginx {
  readonly url: string;
  readonly port: number;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

export const missingNginx = (): string | null => missingCommand('nginx', ['-v']);

export async function startNginx(dir: string, root: string, location = '/blobs/'): Promise<Nginx> {
  const port = await closedPort();
  const work = join(dir, 'nginx');
  await mkdir(join(work, 'tmp'), { recursive: true });
  const conf = join(work, 'nginx.conf');
  await writeFile(
    conf,
    [
      'daemon off;',
      'master_process off;',
      `pid ${join(work, 'nginx.pid')};`,
      `error_log ${join(work, 'error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${join(work, 'access.log')};`,
      `  client_body_temp_path ${join(work, 'tmp')};`,
      `  proxy_temp_path ${join(work, 'tmp')};`,
      `  fastcgi_temp_path ${join(work, 'tmp')};`,
      `  uwsgi_temp_path ${join(work, 'tmp')};`,
      `  scgi_temp_path ${join(work, 'tmp')};`,
      '  default_type application/octet-stream;',
      `  server { listen 127.0.0.1:${port}; location ${location} { alias ${root.replace(/\/?$/, '/')}; } }`,
      '}',
      '',
    ].join('\n'),
  );
  const proc = await startService('nginx', 'nginx', ['-c', conf, '-p', work], port);
  return { url: `http://127.0.0.1:${port}${location}`, port, process: proc, stop: () => proc.stop() };
}
