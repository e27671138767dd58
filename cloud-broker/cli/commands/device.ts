import path from 'node:path';
import { printResult } from '../../../protocol/cli.js';
import { parseAgentConfig } from '../../../protocol/agent-config.js';
import { checkAgentConfigRoot } from '../../../protocol/agent-config-root.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseDeviceId } from '../../../protocol/topics.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { writeAgentConfig } from '../../fleet/provision.js';
import { parseTag } from '../../fleet/types.js';
import { formatTelemetry } from '../../fleet/telemetry-format.js';
import { defineCommand, stringFlag, usageOnError, type FlagValues } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

const client = async (values: FlagValues, ctx: Parameters<typeof resolveCloud>[1]): Promise<FleetClient> =>
  new FleetClient(await resolveCloud(values, ctx));

function list(values: FlagValues, name: string): string[] {
  const v = values[name] as unknown;
  return Array.isArray(v) ? (v as string[]) : typeof v === 'string' ? [v] : [];
}

export const deviceProvision = defineCommand({
  usage: `outpost device provision <id> [--tag T ...] --out DIR [--json]

Registers a device, issues its MQTT/HTTP credentials and writes DIR/agent.json (mode 0600): the
cloud URLs, the device's token and the public key it must trust for signed desired states. Copy
that file to /etc/outpost/agent.json on the device. The token is shown nowhere else.

  --tag T            a tag for the device (repeatable)
  --out DIR          where to write agent.json (required)
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, tag: { type: 'string', multiple: true }, out: { type: 'string' } },
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const id = usageOnError(() => parseDeviceId(positionals[0], 'device id'));
    const tags = usageOnError(() => list(values, 'tag').map((t) => parseTag(t, '--tag')));
    const out = stringFlag(values, 'out');
    if (out === undefined)
      throw new OutpostError('USAGE', "--out DIR is required: the device's agent.json is written there");
    const dir = path.resolve(ctx.cwd, out);
    const res = await (await client(values, ctx)).provision(id, tags);
    const file = path.join(dir, 'agent.json');
    // The agent parses this file at start; checking it here makes a bad one fail on this side.
    checkAgentConfigRoot(parseAgentConfig(res.agentConfig, file), file);
    await writeAgentConfig(dir, res.agentConfig);
    printResult(
      ctx,
      json,
      { device: res.device, agentConfig: file },
      `provisioned ${id}${tags.length ? ` (tags: ${tags.join(', ')})` : ''}; wrote ${file} (contains the device token: keep it secret)`,
    );
    return 0;
  },
});

export const deviceList = defineCommand({
  usage: `outpost device list [--json]

Lists the provisioned devices with their tags, online status and desired revision.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const devices = await (await client(values, ctx)).listDevices();
    const rows = devices.map(
      (d) =>
        `${d.id.padEnd(24)} ${(d.status ?? 'unknown').padEnd(8)} rev ${String(d.revision).padEnd(5)} ${d.tags.join(',')}`,
    );
    printResult(
      ctx,
      json,
      { devices },
      devices.length ? rows.join('\n') : 'no devices; provision one with `outpost device provision <id> --out DIR`',
    );
    return 0;
  },
});

export const deviceShow = defineCommand({
  usage: `outpost device show <id> [--json]

Shows one device: tags, status, its signed desired state, its last report and its latest
telemetry sample (CPU, memory, temperatures, models disk, per-model inference counts and latency).

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const id = usageOnError(() => parseDeviceId(positionals[0], 'device id'));
    const r = await (await client(values, ctx)).showDevice(id);
    const lines = [
      `device ${r.device.id}  status ${r.device.status ?? 'unknown'}  tags ${r.device.tags.join(',') || '-'}`,
      `desired revision ${r.desired?.revision ?? '-'} (expires ${r.desired?.expires ?? '-'}):`,
      ...(r.desired?.models ?? []).map((m) => `  ${m.id}@${m.version} ${m.framework} (${m.files.length} files)`),
      `reported (revision ${r.reported?.appliedRevision ?? '-'}, agent ${r.reported?.agentVersion ?? '-'}):`,
      ...(r.reported?.models ?? []).map(
        (m) => `  ${m.id} active ${m.activeVersion ?? '-'} ${m.state}${m.error ? ` ${m.error.code}` : ''}`,
      ),
      ...formatTelemetry(r.telemetry ?? null),
    ];
    printResult(ctx, json, r, lines.join('\n'));
    return 0;
  },
});

export const deviceTag = defineCommand({
  usage: `outpost device tag <id> [--add T ...] [--remove T ...] [--json]

Adds or removes tags. Tag deployments follow: a device that joins a tag gets the tag's models.

  --add T            add a tag (repeatable)
  --remove T         remove a tag (repeatable)
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, add: { type: 'string', multiple: true }, remove: { type: 'string', multiple: true } },
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const id = usageOnError(() => parseDeviceId(positionals[0], 'device id'));
    const add = usageOnError(() => list(values, 'add').map((t) => parseTag(t, '--add')));
    const remove = usageOnError(() => list(values, 'remove').map((t) => parseTag(t, '--remove')));
    if (add.length + remove.length === 0) throw new OutpostError('USAGE', 'give --add T or --remove T');
    const r = await (await client(values, ctx)).tagDevice(id, add, remove);
    printResult(ctx, json, r, `${id} tags: ${r.device.tags.join(', ') || '(none)'}`);
    return 0;
  },
});

export const deviceRemove = defineCommand({
  usage: `outpost device remove <id> [--json]

Revokes the device's credentials (it is disconnected and cannot connect again), and clears its
retained desired state. Provisioning the same id again issues new credentials.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    const id = usageOnError(() => parseDeviceId(positionals[0], 'device id'));
    const r = await (await client(values, ctx)).removeDevice(id);
    printResult(ctx, json, r, `removed ${id}; its credentials are revoked`);
    return 0;
  },
});
