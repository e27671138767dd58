import { compatibilityCheck, deviceTypeOf } from '../../protocol/compatibility.js';
import type { DesiredModel } from '../../protocol/desired-state.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import { targets } from './desired.js';
import type { DeploySpec, DesiredContext, Fleet } from './fleet.js';
import { formBatches, type RolloutPolicy } from './rollout-policy.js';
import type { Plan, PlanDevice } from './rollout-types.js';
import type { Deployment, Target } from './types.js';

/**
 * `outpost plan` / `deploy --dry-run`: what a deploy would do to each targeted device, judged
 * from what the devices reported, without writing anything. It runs the same code as the real
 * thing (the catalog lookup, the "newest deployment wins" rule, the batch split, the agent's own
 * compatibility check) on a deployment that exists only in memory.
 */
export function planDeploy(f: Fleet, spec: DeploySpec, targetIn: Target, policy: RolloutPolicy | null): Plan {
  const target = f.parseTarget(targetIn);
  const items = f.resolveDeploy(spec);
  const devices = f.store.listDevices().filter((d) => targets(target, d));
  const batches = policy ? formBatches(policy, devices) : [{ canary: false, devices: devices.map((d) => d.id) }];
  const batchOf = new Map(batches.flatMap((b, i) => b.devices.map((d) => [d, i] as const)));
  // Ids above any real one: "newest wins" makes the planned deployment the one in force.
  const planned: Deployment[] = items.map((it, i) => ({
    id: Number.MAX_SAFE_INTEGER - items.length + i,
    target,
    model: it.model,
    version: it.version,
    app: it.app,
    createdAt: new Date().toISOString(),
    rolledBackAt: null,
    rolloutId: null,
  }));
  const ctx = f.desiredContext(planned);
  const out: PlanDevice[] = devices.map((d) => {
    const rep = f.reportedOf(d.id);
    const future = f.desiredModels(d, ctx);
    return planDevice(f, ctx, d.id, d.status, batchOf.get(d.id) ?? 0, future, rep, new Set(items.map((i) => i.model)));
  });
  const sum = (fn: (p: PlanDevice) => number): number => out.reduce((a, p) => a + fn(p), 0);
  const count = (action: string) => sum((p) => p.changes.filter((c) => c.action === action).length);
  return {
    target,
    models: items.map(({ model, version }) => ({ model, version })),
    policy,
    devices: out,
    batches: batches.map((b, i) => ({ index: i, canary: b.canary, size: b.devices.length, devices: b.devices })),
    totals: {
      devices: out.length,
      install: count('install'),
      keep: count('keep'),
      remove: count('remove'),
      incompatible: out.filter((p) => p.incompatible.length > 0).length,
      downloadBytes: sum((p) => p.downloadBytes),
    },
  };
}

function planDevice(
  f: Fleet,
  ctx: DesiredContext,
  id: string,
  status: PlanDevice['status'],
  batch: number,
  future: DesiredModel[],
  rep: ReportedState | null,
  deployed: ReadonlySet<string>,
): PlanDevice {
  const reported = new Map((rep?.models ?? []).map((m) => [m.id, m]));
  const changes: PlanDevice['changes'] = [];
  // What the device holds, by hash: the agent reuses a blob it already has for a new version.
  const have = new Set<string>();
  for (const m of reported.values()) {
    for (const v of new Set([m.activeVersion, m.state === 'active' ? m.version : null])) {
      if (v === null) continue;
      const key = `${m.id}@${v}`;
      let known = ctx.cache.get(key);
      if (known === undefined) ctx.cache.set(key, (known = f.catalogModel(m.id, v)));
      for (const file of known?.files ?? []) have.add(file.sha256);
    }
  }
  let downloadBytes = 0;
  const incompatible: PlanDevice['incompatible'] = [];
  const check = rep
    ? compatibilityCheck({ backends: rep.capabilities.backends, deviceType: deviceTypeOf(rep.capabilities) })
    : null;
  for (const m of future) {
    const active = reported.get(m.id)?.activeVersion ?? null;
    if (active === m.version) {
      changes.push({ action: 'keep', model: m.id, version: m.version, from: active });
      continue;
    }
    changes.push({ action: 'install', model: m.id, version: m.version, from: active });
    for (const file of m.files) {
      if (have.has(file.sha256)) continue;
      have.add(file.sha256);
      downloadBytes += file.size;
    }
    const why = deployed.has(m.id) ? check?.(m) : null;
    if (why) incompatible.push({ model: m.id, code: why.code, message: why.message });
  }
  for (const r of reported.values()) {
    if (r.activeVersion !== null && !future.some((m) => m.id === r.id))
      changes.push({ action: 'remove', model: r.id, version: null, from: r.activeVersion });
  }
  return { device: id, status, batch, changes, downloadBytes, incompatible, unreported: rep === null };
}
