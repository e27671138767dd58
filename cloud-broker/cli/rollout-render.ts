import type { AuditEntry, Plan, RolloutSummary, RolloutView } from '../fleet/rollout-types.js';
import { describeTarget } from '../fleet/types.js';

/** Human output of plan, rollout list/status and audit (the --json output is the API's JSON). */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

const versions = (r: { models: { model: string; version: number }[] }): string =>
  r.models.map((m) => `${m.model}@${m.version}`).join(', ');

export function renderPlan(p: Plan): string {
  const head = `plan: ${versions(p)} to ${describeTarget(p.target)}: ${p.totals.devices} device(s), ${p.batches.length} batch(es)${p.policy ? '' : ' (all at once)'}; nothing was changed`;
  if (p.devices.length === 0) return `${head}\nno device matches the target`;
  const rows = [['DEVICE', 'BATCH', 'CHANGES', 'DOWNLOAD', 'CAN RUN']];
  for (const d of p.devices) {
    const changes = d.changes
      .map((c) =>
        c.action === 'remove'
          ? `remove ${c.model}`
          : c.action === 'keep'
            ? `keep ${c.model}@${c.version}`
            : `install ${c.model}@${c.version}${c.from === null ? '' : ` (from ${c.from})`}`,
      )
      .join(', ');
    const can = d.incompatible.length
      ? `no: ${d.incompatible.map((i) => `${i.code} ${i.message}`).join('; ')}`
      : d.unreported
        ? 'unknown (never reported)'
        : 'yes';
    rows.push([d.device, String(d.batch), changes || '-', bytes(d.downloadBytes), can]);
  }
  const batches = p.batches.map(
    (b) => `  batch ${b.index}${b.canary ? ' (canary)' : ''}: ${b.size} device(s): ${b.devices.join(', ')}`,
  );
  const t = p.totals;
  return [
    head,
    table(rows),
    'batches:',
    ...batches,
    `total: ${t.install} install, ${t.keep} keep, ${t.remove} remove, ${bytes(t.downloadBytes)} to download, ${t.incompatible} device(s) cannot run it`,
  ].join('\n');
}

function countsText(r: RolloutSummary): string {
  const c = r.counts;
  return `${c.succeeded}/${c.total} succeeded, ${c.failed} failed${c.soaking ? `, ${c.soaking} soaking` : ''}${c.sent ? `, ${c.sent} sent` : ''}${c.rolledBack ? `, ${c.rolledBack} rolled back` : ''}${c.cancelled ? `, ${c.cancelled} cancelled` : ''}`;
}

function stateText(r: RolloutSummary): string {
  return r.reason ? `${r.state} (${r.reason.code}: ${r.reason.message})` : r.state;
}

export function renderRolloutList(list: RolloutSummary[]): string {
  if (list.length === 0) return 'no rollouts; a deploy with --canary or --batch-size creates one';
  const rows = [['ID', 'STATE', 'MODELS', 'TARGET', 'BATCH', 'DEVICES', 'CREATED']];
  for (const r of list)
    rows.push([
      String(r.id),
      r.state,
      versions(r),
      describeTarget(r.target),
      r.currentBatch === null ? '-' : `${r.currentBatch + 1}/${r.batchCount}`,
      countsText(r),
      `${r.createdAt} by ${r.createdBy}`,
    ]);
  return table(rows);
}

export function renderRolloutView(r: RolloutView): string {
  const lines = [
    `rollout ${r.id}: ${stateText(r)}${r.rolledBack ? ', devices sent back to their previous version' : ''}`,
    `  ${versions(r)} to ${describeTarget(r.target)}, created ${r.createdAt} by ${r.createdBy}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}`,
    `  ${countsText(r)}`,
  ];
  const rows = [['BATCH', 'DEVICE', 'STATE', 'SINCE', 'VERSION', 'ERROR']];
  for (const b of r.batches) {
    const label = `${b.index}${b.canary ? ' canary' : ''} ${b.state}`;
    for (const d of b.devices) {
      const version = d.models.map((m) => `${m.model}@${m.active ?? '-'} (${m.state})`).join(', ');
      rows.push([label, d.device, d.state, d.since, version, d.error ? `${d.error.code}: ${d.error.message}` : '-']);
    }
  }
  return [...lines, table(rows)].join('\n');
}

export function renderAudit(entries: AuditEntry[]): string {
  if (entries.length === 0) return 'no audit entries';
  const rows = [['AT', 'WHO', 'ACTION', 'ROLLOUT', 'DEVICES', 'DETAILS']];
  for (const e of entries) {
    const devs =
      e.devices.length > 5 ? `${e.devices.slice(0, 5).join(',')} +${e.devices.length - 5}` : e.devices.join(',');
    rows.push([
      e.at,
      `${e.actor.kind}/${e.actor.name}`,
      e.action,
      e.rollout === null ? '-' : String(e.rollout),
      devs || '-',
      JSON.stringify(e.details).slice(0, 160),
    ]);
  }
  return table(rows);
}
