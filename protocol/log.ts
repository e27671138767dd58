import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * The root logger factory both sides use. Logs are pino JSON on stdout (journald keeps them on a
 * device); each module takes a child: `log.child({ module: 'sync' })`. Secrets never reach the
 * log: every path below is replaced by "[redacted]" wherever it appears.
 *
 * This is the one piece of protocol/ that is not a pure function: both sides must redact the same
 * keys, so the list lives next to the wire documents that carry them.
 */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'credentials',
  '*.credentials',
  'privateKey',
  '*.privateKey',
  'secret',
  '*.secret',
  // A database URL may carry its password; the cloud logs it as host:port/db (`db`) instead.
  'database',
  '*.database',
  // S3 credentials (the AWS SDK's names), should a config or an error object ever carry them.
  'secretAccessKey',
  '*.secretAccessKey',
  'sessionToken',
  '*.sessionToken',
];

export type { Logger };

export function createLogger(
  opts: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const options: LoggerOptions = {
    name: opts.name ?? 'outpost',
    level: opts.level ?? process.env.OUTPOST_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/**
 * The child logger of one module. pino appends a child's bindings to its parent's, so a module
 * that receives another module's logger and binds `module` again would print the key twice in
 * every line; the inner one is bound as `component` instead, keeping each line valid, flat JSON.
 */
export function moduleLogger(parent: Logger, module: string, extra: Record<string, unknown> = {}): Logger {
  const key = parent.bindings().module === undefined ? 'module' : 'component';
  return parent.child({ [key]: module, ...extra });
}

/** A logger that drops everything, for library callers and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });
