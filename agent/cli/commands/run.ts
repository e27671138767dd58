import { parseArgs } from 'node:util';
import type { Command } from '../../../protocol/cli.js';
import { printError } from '../../../protocol/cli.js';
import { EXIT, OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { createLogger } from '../../../protocol/log.js';
import { loadAgentConfig, type LoadedAgentConfig } from '../../config/index.js';
import { startDaemon } from '../../daemon/index.js';
import { onReload } from '../../system/signals.js';

const HELP = `Usage: outpost agent run [--config FILE] [--models-dir DIR] [--socket PATH]

Runs the device agent: serves the installed models on the local socket, connects to the broker,
and installs what the signed desired state asks for. Stops cleanly on SIGTERM/SIGINT; SIGHUP
reloads the log level, telemetry settings and API limits (other keys need a restart).

Exit codes: 0 after a clean stop; 3 when the config is missing or invalid (systemd does not
restart the unit then: RestartPreventExitStatus=3); 1 when the stop missed its deadline.

  --config FILE      agent.json (default $OUTPOST_CONFIG, then /etc/outpost/agent.json)
  --models-dir DIR   overrides modelsDir
  --socket PATH      overrides socket
`;

/**
 * How long the graceful stop may take in total. The unit's TimeoutStopSec is 30 s; the API gets
 * at most GRACE_MS to finish inferences in flight, and the rest (parking downloads, the MQTT
 * goodbye, unloading models) must fit in what is left. At STOP_DEADLINE_MS the process exits
 * anyway, so systemd never has to SIGKILL it.
 */
const GRACE_MS = 15_000;
const STOP_DEADLINE_MS = 25_000;

export const agentRun: Command = async (argv, ctx) => {
  let values: { config?: string; 'models-dir'?: string; socket?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        'models-dir': { type: 'string' },
        socket: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new OutpostError('USAGE', `${(err as Error).message}\n${HELP}`);
  }
  if (values.help) {
    ctx.stdout.write(HELP);
    return 0;
  }
  const overrides: Record<string, unknown> = {};
  if (values['models-dir']) overrides.modelsDir = values['models-dir'];
  if (values.socket) overrides.socket = values.socket;

  // The config is read before anything starts, and every way it can be wrong (missing, not JSON,
  // unknown key, bad value, unreadable) exits 3: a restart cannot fix a file, so systemd must not
  // loop on it. Later failures keep their own codes (and systemd restarts on them).
  let loaded: LoadedAgentConfig;
  try {
    loaded = await loadAgentConfig({ path: values.config, env: ctx.env, overrides });
  } catch (err) {
    printError(ctx, false, err);
    return EXIT.INVALID_INPUT;
  }
  const log = createLogger({ name: 'outpost-agent', destination: ctx.stdout, level: loaded.config.log.level });
  // SIGHUP is handled from the start: READY=1 goes out before the daemon's sync side has started,
  // and a reload sent in between must wait for it, not meet SIGHUP's default action (exit).
  const starting = startDaemon({ loaded, overrides, env: ctx.env, log });
  const stopReload = onReload(
    async () => {
      await (await starting).reload();
    },
    { log },
  );
  let daemon: Awaited<typeof starting>;
  try {
    daemon = await starting;
  } catch (err) {
    stopReload();
    throw err;
  }
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  stopReload();
  let deadline: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    deadline = setTimeout(() => resolve('timeout'), STOP_DEADLINE_MS);
    deadline.unref();
  });
  const result = await Promise.race([
    daemon.stop({ graceMs: GRACE_MS }).then(
      () => 'stopped' as const,
      (err: unknown) => {
        log.error({ err: toOutpostError(err).toJSON() }, 'the stop failed');
        return 'failed' as const;
      },
    ),
    timedOut,
  ]);
  clearTimeout(deadline);
  if (result === 'stopped') return 0;
  if (result === 'timeout') {
    const e = new OutpostError(
      'SHUTDOWN_TIMEOUT',
      `the agent did not stop within ${STOP_DEADLINE_MS} ms; exiting anyway`,
      { timeoutMs: STOP_DEADLINE_MS },
    );
    log.error({ code: e.code }, e.message);
  }
  // Something may still hold the event loop (a stuck socket); leave before systemd's SIGKILL.
  setTimeout(() => process.exit(EXIT.FAILURE), 1_000).unref();
  return EXIT.FAILURE;
};
