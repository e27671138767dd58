import { OutpostError } from '../../protocol/errors/index.js';

export type TargetKind = 'device' | 'tag' | 'all';

/** Who a deployment or rollback is for. `value` is the device id, the tag, or '*' for all. */
export interface Target {
  kind: TargetKind;
  value: string;
}

export interface Deployment {
  id: number;
  target: Target;
  /** `owner/name`. */
  model: string;
  version: number;
  /** `owner/app` when the deployment came from an app's model list. */
  app: string | null;
  createdAt: string;
  rolledBackAt: string | null;
  /** The staged rollout that carries it; until that rollout is done it holds only on its sent devices. */
  rolloutId: number | null;
}

export interface DeviceRecord {
  id: string;
  tags: string[];
  createdAt: string;
  removedAt: string | null;
  /** Revision of the last signed desired state (0 = none yet). */
  revision: number;
  status: 'online' | 'offline' | null;
  statusAt: string | null;
  reportedAt: string | null;
}

const TAG = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export function parseTag(value: unknown, key = 'tag'): string {
  if (typeof value !== 'string' || !TAG.test(value)) {
    throw new OutpostError(
      'TAG_INVALID',
      `${key} ${JSON.stringify(value)} is not a tag (1-64 of letters, digits, . _ : -)`,
      { key, value },
    );
  }
  return value;
}

export function describeTarget(t: Target): string {
  return t.kind === 'all' ? 'all devices' : `${t.kind} ${t.value}`;
}
