import { printResult } from '../../../protocol/cli.js';
import { parseModelId, parseVersion } from '../../../protocol/ids.js';
import { defineCommand, stringFlag, usageOnError } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, connect } from '../target.js';

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export const modelList = defineCommand({
  usage: `outpost model list [--cloud URL] [--token T] [--json]

Lists the models the token can see (its own, public ones; the admin sees all).

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const models = await (await connect(values, ctx)).listModels();
    const human =
      models.length === 0
        ? 'no models yet; publish one with `outpost model publish`'
        : table([
            ['ID', 'LATEST', 'PUBLIC', 'UPDATED'],
            ...models.map((m) => [m.id, String(m.latest), m.public ? 'yes' : 'no', m.updatedAt]),
          ]);
    printResult(ctx, json, { models }, human);
    return 0;
  },
});

export const modelVersions = defineCommand({
  usage: `outpost model versions <owner/name> [--json]

Lists every version of a model, oldest first, with its content digest.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const { owner, name } = usageOnError(() => parseModelId(positionals[0], 'model id'));
    const model = await (await connect(values, ctx)).getModel(`${owner}/${name}`);
    const human = table([
      ['VERSION', 'CREATED', 'DIGEST'],
      ...model.versions.map((v) => [String(v.version), v.createdAt, v.digest.slice(0, 16)]),
    ]);
    printResult(ctx, json, { id: model.id, versions: model.versions }, human);
    return 0;
  },
});

export const modelShow = defineCommand({
  usage: `outpost model show <owner/name> [--version N] [--json]

Shows one version of a model (default: the latest): its manifest and its files.

  --version N        the version to show (default latest)
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, version: { type: 'string' } },
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const { owner, name } = usageOnError(() => parseModelId(positionals[0], 'model id'));
    const v = stringFlag(values, 'version');
    const version = v === undefined || v === 'latest' ? 'latest' : usageOnError(() => parseVersion(v, '--version'));
    const d = await (await connect(values, ctx)).getVersion(`${owner}/${name}`, version);
    const p = (d.manifest.model_parameters ?? d.manifest) as Record<string, unknown>;
    const human = [
      `${d.id} version ${d.version} (created ${d.createdAt})`,
      `  framework ${String(p.framework_type)}, purpose ${String(p.purpose)}, size ${JSON.stringify(p.size)}`,
      '  files:',
      ...d.files.map((f) => `    ${f.path}  ${f.size} bytes  sha256 ${f.sha256}`),
    ].join('\n');
    printResult(ctx, json, d, human);
    return 0;
  },
});
