import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';

/**
 * Signal plumbing for the daemon. The daemon composes what to do (stop the API, finish
 * inferences, park downloads, publish offline); this file only guarantees how:
 * - SIGTERM/SIGINT run the shutdown handlers once, last registered first (the component started
 *   last depends on the earlier ones, so it stops first), under one deadline;
 * - a repeated signal during shutdown does not start a second one;
 * - the process exits when the handlers finish (0), fail (1) or miss the deadline (1, logged as
 *   SHUTDOWN_TIMEOUT) so that it always leaves before systemd's TimeoutStopSec sends SIGKILL;
 * - SIGHUP runs reload handlers one at a time; a SIGHUP during a reload queues exactly one more.
 */
export interface ShutdownContext {
  signal: NodeJS.Signals | 'manual';
  /** Aborted at the deadline: long handlers should stop waiting and return. */
  deadline: AbortSignal;
}
export type ShutdownHandler = (ctx: ShutdownContext) => Promise<void> | void;

export interface ShutdownOptions {
  /** Deadline for all handlers together; the smallest value any registration gave wins. */
  timeoutMs: number;
  log: Logger;
  /** Called with the exit code at the end (default process.exit); tests and embedders override it. */
  exit?: (code: number) => void;
}

export interface ShutdownHandle {
  /** Starts the shutdown without a signal (a fatal error); returns when the handlers are done. */
  trigger(): Promise<number>;
  /** Removes this handler (and the signal listeners when it was the last one). */
  dispose(): void;
}

const SHUTDOWN_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

interface Registry {
  handlers: Array<{ handler: ShutdownHandler; opts: ShutdownOptions }>;
  running: Promise<number> | null;
  listener: (signal: NodeJS.Signals) => void;
}
let registry: Registry | null = null;

async function runShutdown(reg: Registry, signal: ShutdownContext['signal']): Promise<number> {
  const entries = [...reg.handlers].reverse();
  const timeoutMs = Math.min(...entries.map((e) => e.opts.timeoutMs));
  const log = moduleLogger(entries[0].opts.log, 'signals');
  const exit = entries[0].opts.exit ?? ((code: number) => process.exit(code));
  const ctl = new AbortController();
  log.info({ signal, timeoutMs, handlers: entries.length }, 'shutting down');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      ctl.abort();
      resolve('timeout');
    }, timeoutMs);
  });
  const work = (async () => {
    let failed = false;
    for (const { handler } of entries) {
      if (ctl.signal.aborted) break;
      try {
        await handler({ signal, deadline: ctl.signal });
      } catch (err) {
        failed = true;
        log.error({ err }, 'a shutdown handler failed; running the others');
      }
    }
    return failed ? 1 : 0;
  })();
  const result = await Promise.race([work, timedOut]);
  clearTimeout(timer);
  let code: number;
  if (result === 'timeout') {
    const err = new OutpostError(
      'SHUTDOWN_TIMEOUT',
      `shutdown handlers did not finish within ${timeoutMs} ms; exiting anyway`,
      { timeoutMs },
    );
    log.error({ err, code: err.code }, err.message);
    code = 1;
  } else {
    code = result;
    log.info({ code }, 'shutdown complete');
  }
  exit(code);
  return code;
}

/** Registers a handler run once on SIGTERM/SIGINT (see the file comment for the guarantees). */
export function onShutdown(handler: ShutdownHandler, opts: ShutdownOptions): ShutdownHandle {
  if (!registry) {
    const reg: Registry = {
      handlers: [],
      running: null,
      listener: (signal) => {
        if (reg.running) {
          reg.handlers[0]?.opts.log.warn({ signal }, 'already shutting down; the deadline still holds');
          return;
        }
        reg.running = runShutdown(reg, signal);
      },
    };
    for (const s of SHUTDOWN_SIGNALS) process.on(s, reg.listener);
    registry = reg;
  }
  const reg = registry;
  const entry = { handler, opts };
  reg.handlers.push(entry);
  return {
    trigger() {
      reg.running ??= runShutdown(reg, 'manual');
      return reg.running;
    },
    dispose() {
      const i = reg.handlers.indexOf(entry);
      if (i >= 0) reg.handlers.splice(i, 1);
      if (reg.handlers.length === 0 && !reg.running) {
        for (const s of SHUTDOWN_SIGNALS) process.off(s, reg.listener);
        if (registry === reg) registry = null;
      }
    },
  };
}

export type ReloadHandler = () => Promise<void> | void;

/**
 * Runs `handler` on SIGHUP, never two at once; a SIGHUP that arrives during a reload runs one
 * more reload after it (the file may have changed again), further ones fold into that one.
 * A failing reload is logged and the daemon keeps its current config. Returns a disposer.
 */
export function onReload(handler: ReloadHandler, opts: { log: Logger }): () => void {
  const log = moduleLogger(opts.log, 'signals');
  let running = false;
  let again = false;
  const run = async (): Promise<void> => {
    running = true;
    do {
      again = false;
      try {
        log.info('reloading (SIGHUP)');
        await handler();
      } catch (err) {
        log.error({ err }, 'reload failed; keeping the current configuration');
      }
    } while (again);
    running = false;
  };
  const listener = (): void => {
    if (running) {
      again = true;
      return;
    }
    void run();
  };
  process.on('SIGHUP', listener);
  return () => {
    process.off('SIGHUP', listener);
  };
}
