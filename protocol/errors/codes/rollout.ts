import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/**
 * Codes of staged rollouts (cloud-broker/fleet/rollout-*.ts, docs/rollouts.md): the request
 * errors, the per-device failure codes a rollout records, and the reasons it stops for.
 */
export const ROLLOUT = {
  ROLLOUT_POLICY_INVALID: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'A rollout flag or policy field has a value out of range (the message names it): counts are N or P% (1-100), durations like 30s, 5m, 1h, --rate-increase 1-5, --on-failure rollback or pause.',
  },
  ROLLOUT_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No rollout has this id; `outpost rollout list` shows them.',
  },
  ROLLOUT_STATE_CONFLICT: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'The rollout is not in a state that allows this (only a running rollout pauses, only a paused one resumes, a done or aborted one is final). See its state with `outpost rollout status <id>`.',
  },
  ROLLOUT_BUSY: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'Another rollout that is still running or paused deploys this model, or the model has a rollout in progress and a plain rollback would fight it. Let it finish, or `outpost rollout abort <id>` it first.',
  },
  ROLLOUT_DEVICE_TIMEOUT: {
    status: 504,
    exit: EXIT.UNAVAILABLE,
    hint: 'A device of a rollout batch did not report the new version active (or did not send the health sample that ends its soak) within --device-timeout. It counts as failed. Check that it is online (`outpost device show <id>`); an offline device converges to what the rollout decided when it returns.',
  },
  ROLLOUT_AGENT_RESTARTED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'The agent of a device restarted while the new version soaked (its reported start time changed), which a rollout counts as a failure: the version may crash it. Look at the agent log on the device (journalctl -u outpost-agent).',
  },
  ROLLOUT_INFERENCE_ERRORS: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: "The new version's inference error rate on a device, from its telemetry during the soak, was above the rollout's bound (maxErrorRate, default 5%). The model activates but fails in service; check its outputs against its purpose and post-processing.",
  },
  ROLLOUT_FAILURE_THRESHOLD: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'More devices failed than --max-failures allows (counted once --min-devices devices finished), so the rollout stopped: with --on-failure rollback it was aborted and the devices that took the version went back; with pause it waits for `outpost rollout resume` or `abort`.',
  },
  ROLLOUT_ABORTED_BY_OPERATOR: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'Someone ran `outpost rollout abort` (the audit trail says who); no further device gets the version.',
  },
} as const satisfies ErrorTable;
