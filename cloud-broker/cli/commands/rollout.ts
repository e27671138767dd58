import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import type { RolloutDevice } from '../../fleet/rollout.js';
import { ROLLOUT_STATES } from '../../fleet/rollout-types.js';
import { defineCommand, stringFlag } from '../args.js';
import { renderRolloutList, renderRolloutView, table } from '../rollout-render.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

function idOf(text: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text))
    throw new OutpostError('USAGE', `rollout id must be a positive integer, got "${text}"`);
  return Number(text);
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
  usage: `outpost rollout status [<id>] [--json]

With <id>: that staged rollout: its state (running, paused, done, aborted and why), and per
batch and per device the device's state in the rollout (pending, sent, soaking, succeeded,
failed, rolled-back, cancelled, skipped), since when, the version it reports and its error code.
--json prints {"rollout": Rollout} (docs/http-api.md).

Without <id>: the fleet's convergence, per device: the desired revision and the one it applied,
and per model the desired version, the active version it reports, its state (pending,
downloading with progress, verifying, installing, active, failed with its error code,
rolled-back) and whether the device has converged. Built only from what devices report.

${CLOUD_FLAGS_HELP}`,
  options: CLOUD_FLAGS,
  positionals: [0, 1],
  async run({ values, positionals, json }, ctx) {
    const client = new FleetClient(await resolveCloud(values, ctx));
    if (positionals.length === 1) {
      const rollout = await client.rolloutView(idOf(positionals[0]));
      printResult(ctx, json, { rollout }, renderRolloutView(rollout));
      return 0;
    }
    const devices = await client.rollout();
    printResult(ctx, json, { devices }, renderRollout(devices));
    return 0;
  },
});

export const rolloutList = defineCommand({
  usage: `outpost rollout list [--state running,paused,...] [--json]

The staged rollouts, newest first: id, state, models, target, the current batch, device counts.
--json prints {"rollouts": [RolloutSummary]}.

  --state S[,S]      only rollouts in these states (${ROLLOUT_STATES.join(', ')})
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, state: { type: 'string' } },
  async run({ values, json }, ctx) {
    const states = stringFlag(values, 'state')?.split(',');
    for (const s of states ?? [])
      if (!(ROLLOUT_STATES as readonly string[]).includes(s))
        throw new OutpostError('USAGE', `--state ${s} is not one of ${ROLLOUT_STATES.join(', ')}`);
    const rollouts = await new FleetClient(await resolveCloud(values, ctx)).rollouts(states);
    printResult(ctx, json, { rollouts }, renderRolloutList(rollouts));
    return 0;
  },
});

const CONTROL_HELP = {
  pause:
    'Stops sending batches. Devices already sent keep being watched (their soak and timeouts go on).\nResume with `outpost rollout resume <id>`.',
  resume:
    'Continues a paused rollout with the next batch. Failures counted before the resume no longer\ncount against --max-failures: you looked at them.',
  abort:
    'Ends the rollout: no further device gets the version, and the devices that took it get their\nprevious version back (a new, higher revision). With --keep they stay on it.\n\n  --keep             leave the devices that took the version on it',
} as const;

function control(verb: 'pause' | 'resume' | 'abort') {
  return defineCommand({
    usage: `outpost rollout ${verb} <id>${verb === 'abort' ? ' [--keep]' : ''} [--json]

${CONTROL_HELP[verb]}

${CLOUD_FLAGS_HELP}`,
    options: verb === 'abort' ? { ...CLOUD_FLAGS, keep: { type: 'boolean' } } : CLOUD_FLAGS,
    positionals: [1, 1],
    async run({ values, positionals, json }, ctx) {
      const id = idOf(positionals[0]);
      const client = new FleetClient(await resolveCloud(values, ctx));
      const rollout = await client.rolloutControl(id, verb, verb === 'abort' ? { keep: values.keep === true } : {});
      printResult(ctx, json, { rollout }, renderRolloutView(rollout));
      return 0;
    },
  });
}

export const rolloutPause = control('pause');
export const rolloutResume = control('resume');
export const rolloutAbort = control('abort');
