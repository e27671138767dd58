import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { defineCommand, stringFlag } from '../args.js';
import { renderAudit } from '../rollout-render.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

export const audit = defineCommand({
  usage: `outpost audit [--since TIME] [--device ID] [--rollout N] [--limit N] [--json]

The audit trail: every change to the fleet, oldest first, with who made it (the token's kind and
subject, or system/scheduler for a rollout's own steps), when, and the devices it names:
deploys, rollbacks, rollout steps (batches sent and done, device failures, pause, resume, abort,
rollback, done), device provision/remove/tag, user creation.

  --since TIME       only entries after this ISO 8601 time (e.g. 2026-12-01T09:00:00Z)
  --device ID        only entries that name this device
  --rollout N        only entries of this rollout
  --limit N          at most N entries (default 1000, at most 10000)
${CLOUD_FLAGS_HELP}`,
  options: {
    ...CLOUD_FLAGS,
    since: { type: 'string' },
    device: { type: 'string' },
    rollout: { type: 'string' },
    limit: { type: 'string' },
  },
  async run({ values, json }, ctx) {
    const since = stringFlag(values, 'since');
    if (since !== undefined && Number.isNaN(Date.parse(since)))
      throw new OutpostError('USAGE', `--since must be an ISO 8601 time, got "${since}"`);
    const num = (flag: string): number | undefined => {
      const t = stringFlag(values, flag);
      if (t === undefined) return undefined;
      if (!/^[1-9]\d*$/.test(t)) throw new OutpostError('USAGE', `--${flag} must be a positive integer, got "${t}"`);
      return Number(t);
    };
    const entries = await new FleetClient(await resolveCloud(values, ctx)).audit({
      since: since === undefined ? undefined : new Date(since).toISOString(),
      device: stringFlag(values, 'device'),
      rollout: num('rollout'),
      limit: num('limit'),
    });
    printResult(ctx, json, { entries }, renderAudit(entries));
    return 0;
  },
});
