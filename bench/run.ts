/**
 * `npm run bench`: runs every benchmark module in bench/ (or those named on the command line,
 * e.g. `npm run bench -- publish socket`) and prints its rows. Each module exports
 * `run(): Promise<BenchRow[]>` and measures its own baseline in the same run, so every row is a
 * ratio against something measured seconds earlier on the same machine, never a remembered number.
 */
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

export interface BenchRow {
  name: string;
  /** What was measured, e.g. "p50 ms", "MB/s". */
  metric: string;
  ours: number;
  baseline?: number;
  baselineName?: string;
  /** ours / baseline (or the inverse where bigger is better; the row says which). */
  ratio?: number;
  note?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const modules = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .filter((f) => filters.length === 0 || filters.some((k) => f.includes(k)))
  .sort();

const fmt = (n: number | undefined) =>
  n === undefined ? '' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3);
let failed = 0;
for (const file of modules) {
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { run?: () => Promise<BenchRow[]> };
  if (typeof mod.run !== 'function') continue;
  // The machine's load is part of every number: shared cores make ratios swing (docs/performance.md).
  process.stdout.write(
    `\n## ${file} (load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})\n`,
  );
  try {
    const rows = await mod.run();
    const table = [['benchmark', 'metric', 'ours', 'baseline', 'ratio', 'note']];
    for (const r of rows)
      table.push([
        r.name,
        r.metric,
        fmt(r.ours),
        r.baseline === undefined ? '' : `${fmt(r.baseline)} (${r.baselineName ?? 'baseline'})`,
        r.ratio === undefined ? '' : `${fmt(r.ratio)}x`,
        r.note ?? '',
      ]);
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    for (const row of table)
      process.stdout.write(
        row
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd() + '\n',
      );
  } catch (err) {
    failed++;
    process.stdout.write(`failed: ${(err as Error).stack ?? String(err)}\n`);
  }
}
process.exitCode = failed ? 1 : 0;
