/**
 * `npm run bench -- scale [--agents=2000] [--replicas=2] [--database=postgres|sqlite] [--workers=4]
 * [--phase-limit=180] [--lb-rate=0]` (or OUTPOST_BENCH_AGENTS, OUTPOST_BENCH_SCALE_REPLICAS,
 * OUTPOST_BENCH_SCALE_DATABASE, OUTPOST_BENCH_SCALE_WORKERS, OUTPOST_BENCH_SCALE_PHASE_LIMIT_S,
 * OUTPOST_BENCH_SCALE_LB_RATE). `--database=sqlite`: the replicas share the SQLite file of their
 * data folder; `--lb-rate=N`: haproxy admits N new MQTT connections per second (0: no limit),
 * and the single replica then sits behind its own haproxy with the same rate.
 *
 * N light agents against the scaled-out cloud (replicas behind haproxy, aedes joined through
 * Redis, one blob folder, one database), against one replica on SQLite in the same run with the
 * same agents: the connect storm, the deploy to all, the time to converge, each replica's CPU
 * and peak RSS, and the database's statements per device. Every row is cluster / single.
 *
 * The light agents (bench/_fleet-helpers.ts) are the device's real sync path (MQTT session,
 * signature check, download with hashing, atomic install, report) without a runtime, in a few
 * child processes of this one; they share the machine's cores with the cloud, which the numbers
 * include: on a 2-core machine the agents, the replicas and the engines compete.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRandomFile } from './_fleet-helpers.js';
import { startCluster, startSingle, type Database, type Deployment } from './_scale-deploy.js';
import { PHASES, runFleet, type Measurement, type ProcUsage, type RunOptions } from './_scale-run.js';
import type { BenchRow } from './run.js';

function option(name: string, env: string, dflt: string): string {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`));
  return flag ? flag.slice(name.length + 3) : (process.env[env] ?? dflt);
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${value}"`);
  return n;
}

/** Each light agent holds an MQTT socket, an HTTP socket while it downloads, and a few files. */
function checkFileLimit(perWorker: number): void {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 1024);
  if (perWorker * 4 > soft)
    throw new Error(
      `${perWorker} agents per process need about ${perWorker * 4} file descriptors but the soft limit is ${soft}: raise it (ulimit -n) or add --workers`,
    );
}

const sec = (ms: number) => ms / 1000;
const cpuOf = (u: ProcUsage) => PHASES.reduce((n, p) => n + u.cpuMs[p], 0);
const phases = (u: ProcUsage) => PHASES.map((p) => `${p} ${sec(u.cpuMs[p]).toFixed(1)}`).join(', ');

function row(name: string, metric: string, ours: number, base: number, note?: string): BenchRow {
  return {
    name,
    metric,
    ours,
    baseline: base,
    baselineName: '1 replica',
    ratio: ours / base,
    ...(note ? { note } : {}),
  };
}

function rows(n: number, cluster: Measurement, single: Measurement, names: [string, string], load: string): BenchRow[] {
  const one = single.replicas[0]!;
  const out: BenchRow[] = [
    row(`${n} devices provisioned (8 requests at a time)`, 's', sec(cluster.provisionMs), sec(single.provisionMs)),
    row(
      `connect storm: all ${n} connected`,
      's',
      sec(cluster.connect.allMs),
      sec(single.connect.allMs),
      `${names[0]} vs ${names[1]}; load average ${load}`,
    ),
    row('connect storm: p50 per agent', 'ms', cluster.connect.p50, single.connect.p50),
    row('connect storm: p99 per agent', 'ms', cluster.connect.p99, single.connect.p99),
    row(`deploy -> all ${n} received the desired state`, 's', sec(cluster.deploy.allMs), sec(single.deploy.allMs)),
    row('deploy -> desired state: p50 per agent', 'ms', cluster.deploy.p50, single.deploy.p50),
    row('deploy -> desired state: p99 per agent', 'ms', cluster.deploy.p99, single.deploy.p99),
    row(`deploy -> every replica's fleet view: ${n} converged`, 's', sec(cluster.convergeMs), sec(single.convergeMs)),
  ];
  for (const r of cluster.replicas) {
    out.push(
      row(`${r.name}: CPU, 3 phases`, 's', sec(cpuOf(r)), sec(cpuOf(one)), `${phases(r)} (1 replica: ${phases(one)})`),
    );
    out.push(row(`${r.name}: peak RSS`, 'MB', r.peakRssMb, one.peakRssMb));
  }
  const total = (m: Measurement) => [...m.replicas, ...m.engines].reduce((s, u) => s + cpuOf(u), 0);
  out.push(
    row(
      'cloud CPU, replicas + engines, 3 phases',
      's',
      sec(total(cluster)),
      sec(total(single)),
      `${cluster.engines.map((e) => `${e.name} ${sec(cpuOf(e)).toFixed(1)} s, ${e.peakRssMb.toFixed(0)} MB`).join('; ')} (each with its child processes; RSS summed over them)`,
    ),
  );
  const agentsCpu = (m: Measurement) => m.agentProcs.reduce((s, u) => s + cpuOf(u), 0);
  out.push(
    row(
      `light agents' CPU (${cluster.agentProcs.length} processes)`,
      's',
      sec(agentsCpu(cluster)),
      sec(agentsCpu(single)),
      `MQTT disconnects seen: ${cluster.disconnects} vs ${single.disconnects}; agents' warnings: ${JSON.stringify(cluster.reasons)} vs ${JSON.stringify(single.reasons)}`,
    ),
  );
  out.push(
    row(
      'database statements per device, 3 phases',
      'statements',
      cluster.dbQueriesPerDevice.driver,
      single.dbQueriesPerDevice.driver,
      "sum of every replica's driver counter (GET /v1/stats: each statement, BEGIN and COMMIT) over connect + deploy + converge, / devices; the fleet view polls are included",
    ),
  );
  out.push(
    row(
      'database statements per device, connect storm',
      'statements',
      cluster.connectQueriesPerDevice.driver,
      single.connectQueriesPerDevice.driver,
      'the same counters over the connect storm alone',
    ),
  );
  const server = cluster.dbQueriesPerDevice.server;
  if (server !== null)
    out.push({
      name: 'PostgreSQL statements per device, 3 phases / connect storm (server side)',
      metric: 'statements',
      ours: server,
      note: `pg_stat_statements calls over the same phases, / devices (no SQLite equivalent); connect storm alone: ${cluster.connectQueriesPerDevice.server?.toFixed(2)}`,
    });
  cluster.replicas.forEach((r, i) => {
    const w = cluster.dbWaitMs;
    if (w.all[i]! > 0)
      out.push({
        name: `${r.name}: event loop blocked on PostgreSQL, connect storm / 3 phases`,
        metric: 'ms per device',
        ours: w.connect[i]! / n,
        note: `${sec(w.connect[i]!).toFixed(1)} s in the storm, ${sec(w.all[i]!).toFixed(1)} s in all (GET /v1/stats waitMs); ${(w.all[i]! / n).toFixed(2)} ms per device over 3 phases`,
      });
  });
  return out;
}

export async function run(): Promise<BenchRow[]> {
  const agents = positive('agents', option('agents', 'OUTPOST_BENCH_AGENTS', '2000'));
  const replicas = positive('replicas', option('replicas', 'OUTPOST_BENCH_SCALE_REPLICAS', '2'));
  const workers = positive('workers', option('workers', 'OUTPOST_BENCH_SCALE_WORKERS', '4'));
  const limitS = positive('phase-limit', option('phase-limit', 'OUTPOST_BENCH_SCALE_PHASE_LIMIT_S', '180'));
  const database = option('database', 'OUTPOST_BENCH_SCALE_DATABASE', 'postgres');
  const lbRate = Number(option('lb-rate', 'OUTPOST_BENCH_SCALE_LB_RATE', '0'));
  if (!Number.isSafeInteger(lbRate) || lbRate < 0) throw new Error(`--lb-rate must be 0 or more, got "${lbRate}"`);
  if (database !== 'sqlite' && database !== 'postgres')
    throw new Error(`--database must be sqlite or postgres, got "${database}"`);
  checkFileLimit(Math.ceil(agents / workers));

  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-scale-'));
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const file = join(work, 'model.bin');
    const size = 16 * 1024;
    const model = { id: 'bench/scale', file, size, sha256: await writeRandomFile(file, size) };
    const opts = (dir: string): RunOptions => ({
      agents,
      workers,
      phaseLimitMs: limitS * 1000,
      model,
      work: join(work, dir),
      log,
    });
    const load0 = loadavg()[0]!;
    const pass = async (start: () => Promise<Deployment>, dir: string) => {
      const d = await start();
      log(`${d.name}: ${agents} light agents in ${workers} processes`);
      try {
        return { m: await runFleet(d, opts(dir)), name: d.name };
      } finally {
        await d.stop();
      }
    };
    // The baseline first, so a cluster pass that aborts still leaves one result in the log.
    const single = await pass(() => startSingle(join(work, 'single'), lbRate), 'single-agents');
    const cluster = await pass(
      () => startCluster(join(work, 'cluster'), replicas, database as Database, lbRate),
      'cluster-agents',
    );
    const load = `${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end (1 min)`;
    // What the storm asked of PostgreSQL, statement by statement (the connect path's cost).
    const top = cluster.m.connectStatements.slice(0, 12);
    if (top.length > 0) {
      log('PostgreSQL statements in the connect storm, calls per device (pg_stat_statements):');
      for (const st of top)
        log(`  ${st.perDevice.toFixed(2).padStart(7)}  ${st.query.replace(/\s+/g, ' ').slice(0, 150)}`);
    }
    return rows(agents, cluster.m, single.m, [cluster.name, single.name], load);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
