import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import type { FleetServicesOptions } from '../fleet/start.js';
import { stringFlag, type FlagValues } from './args.js';

export type ExternalBroker = NonNullable<FleetServicesOptions['externalBroker']>;

/** Flags that configure the embedded broker, meaningless when the fleet uses another one. */
const EMBEDDED_ONLY = ['mqtt-port', 'mqtt-tls-port', 'mqtt-ws-port', 'tls-cert', 'tls-key', 'tls-ca', 'redis'];

const flagsError = (message: string, details: Record<string, unknown>): OutpostError =>
  new OutpostError('CLOUD_BROKER_FLAGS', message, details);

/** A URL safe to print: the password replaced, as in every log line and error. */
export function redactUrl(u: URL): string {
  const c = new URL(u.href);
  if (c.password) c.password = 'REDACTED';
  return c.href.replace(/\/$/, '');
}

/**
 * `--broker mqtt[s]://USER[:PASSWORD]@HOST:PORT` [--broker-admin dynsec|none] [--broker-ca FILE].
 *
 * The user is the fleet's service account on that broker. With `--broker-admin dynsec` (the
 * default: the one broker admin API Outpost speaks) it must also be a Mosquitto dynamic-security
 * admin, and the cloud creates and deletes device logins through $CONTROL; `none` leaves device
 * logins to whoever runs the broker. The password may come from $OUTPOST_BROKER_PASSWORD instead
 * of the URL, which keeps it out of `ps` and shell history. It is never printed: the URL the cloud
 * keeps and logs has no credentials.
 */
export async function brokerFlags(
  values: FlagValues,
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<ExternalBroker | undefined> {
  const raw = stringFlag(values, 'broker');
  const adminFlag = stringFlag(values, 'broker-admin');
  const caFlag = stringFlag(values, 'broker-ca');
  if (raw === undefined) {
    const orphan = adminFlag !== undefined ? '--broker-admin' : caFlag !== undefined ? '--broker-ca' : null;
    if (orphan) throw flagsError(`${orphan} needs --broker (the embedded broker has no admin API)`, { given: orphan });
    return undefined;
  }
  const clash = EMBEDDED_ONLY.find((f) => stringFlag(values, f) !== undefined);
  if (clash)
    throw flagsError(`--${clash} configures the embedded broker; it does not go with --broker`, {
      given: `--${clash}`,
    });
  let u: URL | null;
  try {
    u = new URL(raw);
  } catch {
    u = null;
  }
  // The URL itself may hold the password: never echo it, not even in this error.
  const shown = u ? redactUrl(u) : '(not a URL)';
  if (
    !u ||
    (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') ||
    !u.hostname ||
    (u.pathname !== '' && u.pathname !== '/')
  )
    throw flagsError(`--broker ${shown} must be mqtt://USER:PASSWORD@HOST:PORT or mqtts://..., no path`, {
      broker: shown,
    });
  const username = decodeURIComponent(u.username);
  const password = u.password ? decodeURIComponent(u.password) : (env.OUTPOST_BROKER_PASSWORD ?? '');
  if (!username || !password)
    throw flagsError(
      `--broker ${shown} needs a user and a password (in the URL or in $OUTPOST_BROKER_PASSWORD): the cloud's service account there`,
      { broker: shown },
    );
  const admin = adminFlag ?? 'dynsec';
  if (admin !== 'dynsec' && admin !== 'none')
    throw flagsError(`--broker-admin "${admin}" is not dynsec or none`, { given: admin });
  if (caFlag !== undefined && u.protocol !== 'mqtts:')
    throw flagsError('--broker-ca is for an mqtts:// --broker', { broker: shown });
  let ca: string | undefined;
  if (caFlag !== undefined) {
    const file = path.resolve(cwd, caFlag);
    ca = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new OutpostError('CLOUD_TLS_INVALID', `--broker-ca ${file} cannot be read (${err.code ?? err.message})`, {
        file,
      });
    });
  }
  return {
    url: `${u.protocol}//${u.host}`,
    username,
    password,
    ...(admin === 'dynsec' ? { admin: 'dynsec' as const } : {}),
    ...(ca ? { ca } : {}),
  };
}
