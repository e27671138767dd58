import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closedPort } from '../daemon-process.js';
import { missingCommand } from '../requires.js';
import { type ServiceProcess, startService } from './service.js';

/**
 * haproxy 2.6 in front of replicas: one TCP frontend for HTTP and one for MQTT, round robin, with
 * health checks fast enough that a killed replica leaves the pool within about a second.
 */
export interface Haproxy {
  readonly httpPort: number;
  readonly mqttPort: number;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

export interface Backend {
  host: string;
  httpPort: number;
  mqttPort: number;
}

export const missingHaproxy = (): string | null => missingCommand('haproxy', ['-v']);

/** `mqttSessionRate`: new MQTT connections admitted per second (haproxy `rate-limit sessions`); others wait in the listen queue. */
export interface HaproxyOptions {
  mqttSessionRate?: number;
}

export function haproxyConfig(
  httpPort: number,
  mqttPort: number,
  backends: Backend[],
  opts: HaproxyOptions = {},
): string {
  const servers = (kind: 'httpPort' | 'mqttPort') =>
    backends.map((b, i) => `  server r${i} ${b.host}:${b[kind]} check inter 300ms fall 2 rise 1`).join('\n');
  return [
    'global',
    // Two fds per proxied connection, and the soft fd limit here is 20000.
    '  maxconn 9000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    // MQTT connections live as long as the device: keep-alive pings keep them under this.
    '  timeout client 10m',
    '  timeout server 10m',
    `frontend http\n  bind 127.0.0.1:${httpPort}\n  default_backend replicas_http`,
    `backend replicas_http\n  balance roundrobin\n${servers('httpPort')}`,
    `frontend mqtt\n  bind 127.0.0.1:${mqttPort}\n${opts.mqttSessionRate ? `  rate-limit sessions ${opts.mqttSessionRate}\n` : ''}  default_backend replicas_mqtt`,
    `backend replicas_mqtt\n  balance roundrobin\n${servers('mqttPort')}`,
    '',
  ].join('\n');
}

export async function startHaproxy(dir: string, backends: Backend[], opts: HaproxyOptions = {}): Promise<Haproxy> {
  const httpPort = await closedPort();
  const mqttPort = await closedPort();
  const conf = join(dir, 'haproxy.cfg');
  await writeFile(conf, haproxyConfig(httpPort, mqttPort, backends, opts));
  // -db: stay in the foreground, so the PID kept is haproxy's own.
  const proc = await startService('haproxy', 'haproxy', ['-db', '-f', conf], httpPort);
  return { httpPort, mqttPort, process: proc, stop: () => proc.stop() };
}
