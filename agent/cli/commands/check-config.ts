import { parseArgs } from 'node:util';
import { redactAgentConfig, type ConfigIssue } from '../../../protocol/agent-config.js';
import { printError, printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { checkAgentConfigRoot } from '../../../protocol/agent-config-root.js';
import { loadAgentConfig } from '../../config/load.js';

const HELP = `usage: outpost agent check-config [--config FILE] [--json]

Reads the agent config (FILE, else $OUTPOST_CONFIG, else /etc/outpost/agent.json) with its
OUTPOST_* environment overrides, validates it, and prints the effective config with secrets
redacted, or every problem found. Exit 0 when valid, 3 when invalid, 4 when the file is missing.
`;

/** `outpost agent check-config [--config F] [--json]` */
export const checkConfig: Command = async (argv, ctx) => {
  let json = argv.includes('--json');
  let values: { config?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return printError(ctx, json, new OutpostError('USAGE', `${(err as Error).message}\n${HELP}`));
  }
  json = values.json === true;
  if (values.help) {
    ctx.stdout.write(HELP);
    return 0;
  }
  try {
    const { config, path, overridden } = await loadAgentConfig({ path: values.config, env: ctx.env });
    // The full TUF parse the daemon runs right after READY (loadAgentConfig checks the shape).
    checkAgentConfigRoot(config, path);
    const shown = redactAgentConfig(config);
    const from = Object.entries(overridden).map(([k, src]) => `  ${k} <- ${src}`);
    const human = [
      `${path}: valid`,
      ...(from.length ? ['overridden:', ...from] : []),
      JSON.stringify({ ...shown, socketMode: '0' + shown.socketMode.toString(8) }, null, 2),
    ].join('\n');
    printResult(ctx, json, { ok: true, path, overridden, config: shown }, human);
    return 0;
  } catch (err) {
    const e = toOutpostError(err);
    const issues = (e.details as { issues?: ConfigIssue[] } | undefined)?.issues;
    // One line per problem reads better than one long line when a human fixes a file.
    if (!json && Array.isArray(issues) && issues.length > 1) {
      for (const i of issues) ctx.stderr.write(`error ${i.code}: ${i.key} ${i.message} (in ${i.source})\n`);
      return e.exitCode;
    }
    return printError(ctx, json, e);
  }
};
