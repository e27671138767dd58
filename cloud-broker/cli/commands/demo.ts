import { printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { runDemo } from '../../demo/run-demo.js';
import { defineCommand, stringFlag } from '../args.js';

const USAGE = `outpost demo [--data-dir DIR] [--keep-running] [--timeout SECONDS] [--json]

The quickstart: on this machine, starts the embedded cloud (free ports), generates a small ONNX
colour classifier and configures it with \`outpost model configure\`, publishes it with
\`outpost model publish\`, provisions a device, starts a real agent (\`outpost-agent run\`, a child
process), deploys the model, waits until the device reports it active, and prints the prediction
the agent makes for a red test image through its Unix socket. Then it stops everything.

  --data-dir DIR       keep the demo's cloud, model, device and logs in DIR (default: a temp dir,
                       removed at the end)
  --keep-running       leave the cloud and the agent running, print their addresses and commands
                       to try, and stop them on Ctrl-C
  --timeout SECONDS    how long to wait for the agent's socket and for the model to become active
                       (default 60)
  --json               progress lines go to stderr; stdout gets one JSON result line`;

export const demo: Command = defineCommand({
  usage: USAGE,
  options: {
    'data-dir': { type: 'string' },
    'keep-running': { type: 'boolean' },
    timeout: { type: 'string' },
  },
  run: async ({ values, json }, ctx) => {
    const raw = stringFlag(values, 'timeout');
    const timeout = raw === undefined ? 60 : Number(raw);
    if (!Number.isFinite(timeout) || timeout <= 0 || (raw !== undefined && raw.trim() === '')) {
      throw new OutpostError('USAGE', `--timeout "${raw}" must be a number of seconds above 0`, {
        flag: 'timeout',
        value: raw,
      });
    }
    const keepRunning = values['keep-running'] === true;
    const result = await runDemo(
      { dataDir: stringFlag(values, 'data-dir'), keepRunning, timeoutMs: timeout * 1000, json },
      ctx,
    );
    // With --keep-running the JSON line was printed before waiting for Ctrl-C.
    if (json && !keepRunning) printResult(ctx, true, result, '');
    return 0;
  },
});
