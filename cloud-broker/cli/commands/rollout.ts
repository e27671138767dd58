import { printResult } from '../../../protocol/cli.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import type { RolloutDevice } from '../../fleet/rollout.js';
import { defineCommand } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

function stateText(m: RolloutDevice['models'][number]): string {
  if (m.state === 'downloading' && m.progress) {
    const pct = m.progress.total > 0 ? Math.floor((100 * m.progress.bytes) / m.progress.total) : 0;
    return `downloading ${pct}%`;
  }
  if (m.error) return `${m.state} ${m.error.code}: ${m.error.message}`;
  return m.state;
}

/** One row per device and model: desired vs reported version, state, progress, error. */
export function renderRollout(devices: RolloutDevice[]): string {
  if (devices.length === 0) return 'no devices; provision one with `outpost device provision <id> --out DIR`';
  const rows = [['DEVICE', 'STATUS', 'REVISION', 'MODEL', 'DESIRED', 'ACTIVE', 'STATE']];
  for (const d of devices) {
    const rev = `${d.appliedRevision ?? '-'}/${d.revision}`;
    const status = d.status ?? 'unknown';
    if (d.models.length === 0)
      rows.push([d.device, status, rev, '-', '-', '-', d.converged ? 'converged' : 'unreported']);
    for (const m of d.models)
      rows.push([d.device, status, rev, m.id, String(m.desired ?? '-'), String(m.active ?? '-'), stateText(m)]);
  }
  const done = devices.filter((d) => d.converged).length;
  const refused = devices
    .filter((d) => d.desiredError)
    .map((d) => `${d.device} refused its desired state: ${d.desiredError!.code}: ${d.desiredError!.message}`);
  return [table(rows), ...refused, `${done}/${devices.length} device(s) converged`].join('\n');
}

export const rolloutStatus = defineCommand({
  usage: `outpost rollout status [--json]

Per device: the desired revision and the one it applied, and per model the desired version, the
active version it reports, its state (pending, downloading with progress, verifying, installing,
active, failed with its error code, rolled-back) and whether the device has converged. Built only
from what devices report.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  async run({ values, json }, ctx) {
    const devices = await new FleetClient(await resolveCloud(values, ctx)).rollout();
    printResult(ctx, json, { devices }, renderRollout(devices));
    return 0;
  },
});
