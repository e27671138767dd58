import { parseArgs } from 'node:util';
import { printError, printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { AgentClient } from '../../client/index.js';

const HELP = `usage: outpost agent status [--json] [--socket PATH]

Shows the local agent's installed models (active version, state, backend) and its API state.
The socket is --socket, else $OUTPOST_SOCKET, else /run/outpost/agent.sock. Exit 7 when the
agent cannot be reached.
`;

interface StatusModel {
  id: string;
  activeVersion: number | null;
  loadedVersions?: number[];
  state: string;
  backend?: string;
  purpose?: string;
  error?: { code: string; message: string };
}
interface Status {
  agent?: { version?: string; pid?: number; uptimeSeconds?: number };
  models?: StatusModel[];
  api?: { connections?: number };
}

/** `outpost agent status [--json] [--socket PATH]` */
export const agentStatus: Command = async (argv, ctx) => {
  let json = argv.includes('--json');
  try {
    const { values } = parseArgs({
      args: argv,
      options: { json: { type: 'boolean' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
    json = values.json === true;
    if (values.help) {
      ctx.stdout.write(HELP);
      return 0;
    }
    const client = new AgentClient({ socket: values.socket ?? ctx.env.OUTPOST_SOCKET });
    const s = (await client.status()) as Status;
    printResult(ctx, json, s, humanStatus(client.socket, s));
    return 0;
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return printError(ctx, json, new OutpostError('USAGE', `${err.message}\n${HELP}`));
    }
    return printError(ctx, json, err);
  }
};

function humanStatus(socket: string, s: Status): string {
  const a = s.agent ?? {};
  const lines = [`agent ${a.version ?? '?'} (pid ${a.pid ?? '?'}), up ${a.uptimeSeconds ?? '?'} s, socket ${socket}`];
  const models = s.models ?? [];
  if (models.length === 0) lines.push('no models installed');
  else {
    const rows = models.map((m) => [
      m.id,
      m.activeVersion === null ? '-' : `v${m.activeVersion}`,
      m.state,
      m.backend ?? '',
      m.purpose ?? '',
      m.error ? `${m.error.code}: ${m.error.message}` : '',
    ]);
    const head = ['MODEL', 'ACTIVE', 'STATE', 'BACKEND', 'PURPOSE', 'ERROR'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows])
      lines.push(
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  }
  return lines.join('\n');
}
