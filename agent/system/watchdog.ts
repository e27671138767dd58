import type { Notifier } from './sd-notify.js';

export interface WatchdogHandle {
  /** Milliseconds between pings, or 0 when the watchdog is off. */
  readonly intervalMs: number;
  stop(): void;
}

/**
 * The watchdog interval systemd asked for, or 0 when it asked for none (WATCHDOG_USEC unset,
 * or WATCHDOG_PID naming another process: then the variables were inherited, not meant for us).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid = process.pid): number {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isSafeInteger(usec) || usec <= 0) return 0;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return 0;
  // Half the timeout, as sd_watchdog_enabled(3) advises: one late ping must not kill us.
  return Math.max(1, Math.floor(usec / 2000));
}

/**
 * Sends WATCHDOG=1 every WATCHDOG_USEC/2 from a timer on the event loop. The timer, not a worker
 * thread, is the point: when the loop is blocked (a synchronous hot loop, a stuck native call on
 * the main thread) the pings stop and systemd restarts the agent. The timer is unref'd so that
 * it never keeps an otherwise finished process alive.
 */
export function startWatchdog(notifier: Notifier, env: NodeJS.ProcessEnv = process.env): WatchdogHandle {
  const intervalMs = notifier.enabled ? watchdogIntervalMs(env) : 0;
  if (intervalMs === 0) return { intervalMs: 0, stop() {} };
  notifier.watchdog();
  const timer = setInterval(() => notifier.watchdog(), intervalMs);
  timer.unref();
  return { intervalMs, stop: () => clearInterval(timer) };
}
