import { closedPort } from '../daemon-process.js';
import { missingCommand } from '../requires.js';
import { type ServiceProcess, startService } from './service.js';

/** A Redis 7 server from Debian's `redis-server` on a free loopback port, no persistence. */
export interface Redis {
  readonly url: string;
  readonly port: number;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

export const missingRedis = (): string | null => missingCommand('redis-server', ['--version']);

export async function startRedis(dir: string): Promise<Redis> {
  const port = await closedPort();
  const proc = await startService(
    'redis',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    port,
  );
  return { url: `redis://127.0.0.1:${port}`, port, process: proc, stop: () => proc.stop() };
}
