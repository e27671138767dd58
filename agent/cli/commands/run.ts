import { parseArgs } from 'node:util';
import type { Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { createLogger } from '../../../protocol/log.js';
import { startDaemon } from '../../daemon/index.js';
import { onReload } from '../../system/signals.js';

const HELP = `Usage: outpost agent run [--config FILE] [--models-dir DIR] [--socket PATH]

Runs the device agent: serves the installed models on the local socket, connects to the broker,
and installs what the signed desired state asks for. Stops cleanly on SIGTERM/SIGINT; SIGHUP
reloads the log level, telemetry interval and API limits.

  --config FILE      agent.json (default $OUTPOST_CONFIG, then /etc/outpost/agent.json)
  --models-dir DIR   overrides modelsDir
  --socket PATH      overrides socket
`;

export const agentRun: Command = async (argv, ctx) => {
  let values: { config?: string; 'models-dir'?: string; socket?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: {
      config: { type: 'string' }, 'models-dir': { type: 'string' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    } }));
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
  const log = createLogger({ name: 'outpost-agent', destination: ctx.stdout });
  const daemon = await startDaemon({ configPath: values.config, overrides, env: ctx.env, log });
  log.level = daemon.config.log.level;
  const stopReload = onReload(async () => {
    await daemon.reload();
  }, { log });
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  stopReload();
  // systemd's TimeoutStopSec is 30 s in the unit; leave room for the MQTT goodbye and unloads.
  await daemon.stop({ graceMs: 15_000 });
  return 0;
};
