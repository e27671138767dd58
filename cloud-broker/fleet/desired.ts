import { createHash } from 'node:crypto';
import type { DesiredModel, DesiredSigned } from '../../protocol/desired-state.js';
import { canonicalJson } from '../../protocol/signing.js';
import type { Deployment, Target } from './types.js';

/**
 * Which deployment decides each model on one device: of the live deployments whose target
 * matches the device (its id, one of its tags, or all), the newest wins. "Newest wins" makes the
 * last operator action the one in force, whatever its scope, and makes a device that joins a tag
 * later pick up that tag's deployment (unless something newer targets it). Pure.
 *
 * A deployment of a rollout that is not done holds only on the devices that rollout sent
 * (`scopes`: rollout id -> sent devices; a rollout absent from it is done). Every other device
 * keeps what the older deployments say, which is how batches, and the old version for a device
 * that joins the target mid-rollout, come about.
 */
export function effectiveDeployments(
  live: readonly Deployment[],
  device: { id: string; tags: readonly string[] },
  scopes: ReadonlyMap<number, ReadonlySet<string>> = new Map(),
): Map<string, Deployment> {
  const out = new Map<string, Deployment>();
  for (const d of live) {
    if (d.rolloutId !== null && scopes.get(d.rolloutId)?.has(device.id) === false) continue;
    if (!targets(d.target, device)) continue;
    const prev = out.get(d.model);
    if (!prev || d.id > prev.id) out.set(d.model, d);
  }
  return out;
}

/** Whether a target (its id, one of its tags, or all) covers the device. Pure. */
export function targets(t: Target, device: { id: string; tags: readonly string[] }): boolean {
  return (
    t.kind === 'all' ||
    (t.kind === 'device' && t.value === device.id) ||
    (t.kind === 'tag' && device.tags.includes(t.value))
  );
}

/**
 * What a rollback of `model` on a target undoes: the newest live deployments of that exact target
 * that share the current version (a re-deploy of the same version is undone with it). The version
 * in force afterwards is the next older live deployment's, or null when there is none (then the
 * rollback is refused rather than leaving the target with nothing). Pure.
 */
export function planRollback(newestFirst: readonly Deployment[]): { undo: number[]; from: number; to: number } | null {
  if (newestFirst.length === 0) return null;
  const from = newestFirst[0].version;
  const undo: number[] = [];
  for (const d of newestFirst) {
    if (d.version !== from) return { undo, from, to: d.version };
    undo.push(d.id);
  }
  return null;
}

/** Digest of a device's desired model list: equal digests need no new revision. */
export function modelsDigest(models: readonly DesiredModel[]): string {
  return createHash('sha256').update(canonicalJson(models)).digest('hex');
}

export function buildSigned(
  device: string,
  revision: number,
  models: DesiredModel[],
  now: Date,
  lifetimeSeconds: number,
): DesiredSigned {
  // Whole seconds keep the times short and identical on every platform's Date parser.
  const issued = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const expires = new Date(issued.getTime() + lifetimeSeconds * 1000);
  return {
    type: 'desired',
    device,
    revision,
    issued: issued.toISOString().replace('.000Z', 'Z'),
    expires: expires.toISOString().replace('.000Z', 'Z'),
    models,
  };
}
