/**
 * One pass of bench/scale.ts over one deployment: provision N devices, open N light agents in a
 * few child processes (bench/_scale-agents.ts), then three phases, each bounded in time:
 *
 *   connect:  every agent starts its MQTT session at once; ends when each has subscribed and
 *             announced itself (the session's "connected").
 *   deploy:   from the deploy API call until every agent has received a desired state naming the
 *             new version.
 *   converge: from the same call until the fleet view (GET /v1/fleet/devices?state=converged) of
 *             every replica counts all N devices: each agent verified the signed document,
 *             downloaded and hashed the blob, installed it and reported.
 *
 * Every process of the deployment (with its children: PostgreSQL's backends) is sampled from /proc
 * every 250 ms: CPU time per phase, and the peak RSS.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloudClient } from '../cloud-broker/client/cloud-client.js';
import { FleetClient } from '../cloud-broker/fleet/fleet-client.js';
import { SOURCE_CHILD_ARGS } from './_compiled.js';
import type { AgentConfigDraft } from '../cloud-broker/fleet/provision.js';
import { publishFile } from './_fleet-helpers.js';
import { procTreeStats } from './_procs.js';
import type { FromWorker, ToWorker } from './_scale-agents.js';
import type { DbSnapshot, Deployment } from './_scale-deploy.js';
import { percentile } from './_stats.js';

const WORKER = fileURLToPath(new URL('./_scale-agents.ts', import.meta.url));
export const PHASES = ['connect', 'deploy', 'converge'] as const;
export type Phase = (typeof PHASES)[number];

export interface RunOptions {
  agents: number;
  workers: number;
  /** Each phase (and provisioning) must end within this, or the pass aborts saying where it stood. */
  phaseLimitMs: number;
  /** The model file: written once by the caller, published to each deployment. */
  model: { id: string; file: string; sha256: string; size: number };
  work: string;
  log: (line: string) => void;
}

export interface ProcUsage {
  name: string;
  /** CPU ms per phase. */
  cpuMs: Record<Phase, number>;
  peakRssMb: number;
}

export interface Measurement {
  provisionMs: number;
  connect: { allMs: number; p50: number; p99: number };
  deploy: { allMs: number; p50: number; p99: number };
  convergeMs: number;
  replicas: ProcUsage[];
  engines: ProcUsage[];
  agentProcs: ProcUsage[];
  /** Statements during the three phases, per device: the replicas' counters, and PostgreSQL's (or null). */
  dbQueriesPerDevice: { driver: number; server: number | null };
  /** The same for the connect storm alone. */
  connectQueriesPerDevice: { driver: number; server: number | null };
  /** Per replica, ms its event loop stood blocked on PostgreSQL: in the connect storm, and in all 3 phases. */
  dbWaitMs: { connect: number[]; all: number[] };
  /** PostgreSQL's statements of the connect storm by text, calls per device, most first (empty on SQLite). */
  connectStatements: { query: string; perDevice: number }[];
  disconnects: number;
  /** The agents' warnings by message (why a connect or download failed), with counts. */
  reasons: Record<string, number>;
}

class Worker {
  readonly child: ChildProcess;
  progress = { connected: 0, received: 0, active: 0, disconnects: 0, reasons: {} as Record<string, number> };
  private waiting = new Map<string, (m: FromWorker) => void>();
  error: string | null = null;

  constructor() {
    this.child = fork(WORKER, [], { execArgv: [...SOURCE_CHILD_ARGS], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromWorker) => {
      if (m.t === 'progress') this.progress = m;
      else if (m.t === 'error') this.error = m.message;
      this.waiting.get(m.t)?.(m);
    });
  }

  send(m: ToWorker): void {
    this.child.send(m);
  }

  next<T extends FromWorker['t']>(t: T): Promise<Extract<FromWorker, { t: T }>> {
    return new Promise((resolve) => this.waiting.set(t, resolve as (m: FromWorker) => void));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    if (this.child.connected) this.send({ t: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
  }
}

/** Races `p` against the phase limit; the error says what was still missing. */
async function bounded<T>(what: string, p: Promise<T>, limitMs: number, status: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`aborted: ${what} did not finish within ${limitMs / 1000} s (${status()})`)),
      limitMs,
    );
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

const now = () => performance.timeOrigin + performance.now();

/** CPU per phase and peak RSS of a set of processes, sampled in the background. */
function sampler(procs: { name: string; pid: number }[]) {
  const usage = procs.map((p) => ({
    name: p.name,
    cpuMs: { connect: 0, deploy: 0, converge: 0 } as Record<Phase, number>,
    peakRssMb: 0,
  }));
  let phase: Phase | null = null;
  const last: number[] = [];
  const sample = async () => {
    const stats = await Promise.all(procs.map((p) => procTreeStats(p.pid).catch(() => null)));
    stats.forEach((s, i) => {
      if (!s) return;
      usage[i]!.peakRssMb = Math.max(usage[i]!.peakRssMb, s.rssMb);
      if (phase) usage[i]!.cpuMs[phase] += s.cpuMs - (last[i] ?? s.cpuMs);
      last[i] = s.cpuMs;
    });
  };
  const timer = setInterval(() => void sample(), 250);
  return {
    usage,
    /** Closes the current phase at its exact end (one last sample) and opens `next`. */
    async enter(next: Phase | null) {
      await sample();
      phase = next;
    },
    stop: () => clearInterval(timer),
  };
}

function perDevice(a: DbSnapshot, b: DbSnapshot, n: number): { driver: number; server: number | null } {
  return {
    driver: (b.driver - a.driver) / n,
    server: a.server === null || b.server === null ? null : (b.server.total - a.server.total) / n,
  };
}

function statementsBetween(a: DbSnapshot, b: DbSnapshot, n: number): { query: string; perDevice: number }[] {
  if (!a.server || !b.server) return [];
  return [...b.server.byQuery]
    .map(([query, calls]) => ({ query, perDevice: (calls - (a.server!.byQuery.get(query) ?? 0)) / n }))
    .filter((s) => s.perDevice > 0)
    .sort((x, y) => y.perDevice - x.perDevice);
}

export async function runFleet(d: Deployment, o: RunOptions): Promise<Measurement> {
  const catalog = new CloudClient({ url: d.http, token: d.token });
  const fleet = new FleetClient({ url: d.http, token: d.token });
  const { version } = await publishFile(catalog, o.model.id, o.model.file, o.model.sha256, o.model.size);

  // Provisioning: the fleet API has no bulk call, so 8 requests in flight (what a script would do).
  const t0 = performance.now();
  const configs: AgentConfigDraft[] = [];
  const ids = Array.from({ length: o.agents }, (_, i) => `scale-${String(i).padStart(5, '0')}`);
  const provisionAll = async () => {
    for (let i = 0; i < ids.length; i += 8)
      configs.push(
        ...(await Promise.all(
          ids.slice(i, i + 8).map(async (id) => (await fleet.provision(id, ['bench'])).agentConfig),
        )),
      );
  };
  await bounded('provisioning', provisionAll(), o.phaseLimitMs, () => `${configs.length} of ${o.agents} provisioned`);
  const provisionMs = performance.now() - t0;
  o.log(`  provisioned ${o.agents} devices in ${(provisionMs / 1000).toFixed(1)} s`);

  const workers = Array.from({ length: o.workers }, () => new Worker());
  try {
    const per = Math.ceil(o.agents / o.workers);
    const opened = workers.map((w) => w.next('opened'));
    workers.forEach((w, i) =>
      w.send({
        t: 'open',
        configs: configs.slice(i * per, (i + 1) * per),
        root: join(o.work, `agents-${i}`),
        // The agent's own reconnect back-off (a refused connect in the storm costs what it costs
        // a real device); telemetry off, as the phases last less than one sampling interval.
        overrides: { telemetry: { enabled: false } },
      }),
    );
    const status = () => {
      const p = workers.map((w) => w.progress);
      const sum = (k: 'connected' | 'received' | 'active' | 'disconnects') => p.reduce((n, x) => n + x[k], 0);
      const err = workers.find((w) => w.error)?.error;
      return `${sum('connected')} connected, ${sum('received')} received, ${sum('active')} active of ${o.agents}; ${sum('disconnects')} disconnects${err ? `; a worker failed: ${err}` : ''}`;
    };
    await bounded('opening the light agents', Promise.all(opened), o.phaseLimitMs, status);

    const procs = [
      ...d.replicas.map((r, i) => ({ name: `replica ${i}`, pid: r.pid })),
      ...d.engines.map((e) => ({ name: e.name, pid: e.pid })),
      ...workers.map((w, i) => ({ name: `agents ${i}`, pid: w.child.pid! })),
    ];
    const s = sampler(procs);
    try {
      // Connect storm.
      await s.enter('connect');
      const q0 = await d.dbQueries();
      const connected = workers.map((w) => w.next('connected'));
      const c0 = now();
      for (const w of workers) w.send({ t: 'connect' });
      const cAt = (await bounded('the connect storm', Promise.all(connected), o.phaseLimitMs, status)).flatMap(
        (m) => m.at,
      );
      const cMs = cAt.map((t) => t - c0).sort((a, b) => a - b);
      o.log(`  connect storm: all ${o.agents} in ${(cMs.at(-1)! / 1000).toFixed(1)} s`);
      const qc = await d.dbQueries();

      // Deploy to all, then converge.
      await s.enter('deploy');
      const received = workers.map((w) => w.next('received'));
      for (const w of workers) w.send({ t: 'watch', model: o.model.id, version });
      const d0 = now();
      await fleet.deploy({ model: `${o.model.id}@${version}` }, { kind: 'tag', value: 'bench' });
      const rAt = (await bounded('the deploy to all', Promise.all(received), o.phaseLimitMs, status)).flatMap(
        (m) => m.at,
      );
      const rMs = rAt.map((t) => t - d0).sort((a, b) => a - b);
      o.log(`  deploy: all ${o.agents} received it in ${(rMs.at(-1)! / 1000).toFixed(1)} s`);

      await s.enter('converge');
      // Each replica's own view, not the balancer's: converged means every replica says so.
      const views = d.replicas.map((r) => r.http);
      const convergedOn = async (http: string) => {
        const q = `?state=converged&model=${encodeURIComponent(o.model.id)}&limit=1`;
        const page = await fetch(`${http}/v1/fleet/devices${q}`, { headers: { authorization: `Bearer ${d.token}` } });
        if (!page.ok) throw new Error(`GET ${http}/v1/fleet/devices answered ${page.status}: ${await page.text()}`);
        return ((await page.json()) as { total: number }).total;
      };
      let counts = views.map(() => 0);
      const converge = async () => {
        while (counts.some((n) => n < o.agents)) {
          await new Promise((r) => setTimeout(r, 500));
          counts = await Promise.all(views.map(convergedOn));
        }
      };
      await bounded(
        'the converge',
        converge(),
        o.phaseLimitMs,
        () => `fleet views count ${counts.join(' / ')} converged; ${status()}`,
      );
      const convergeMs = now() - d0;
      await s.enter(null);
      const q1 = await d.dbQueries();
      o.log(
        `  converge: every replica's fleet view counts ${o.agents} converged after ${(convergeMs / 1000).toFixed(1)} s`,
      );
      const pct = (ms: number[]) => ({ allMs: ms.at(-1)!, p50: percentile(ms, 50), p99: percentile(ms, 99) });
      return {
        provisionMs,
        connect: pct(cMs),
        deploy: pct(rMs),
        convergeMs,
        replicas: s.usage.slice(0, d.replicas.length),
        engines: s.usage.slice(d.replicas.length, d.replicas.length + d.engines.length),
        agentProcs: s.usage.slice(d.replicas.length + d.engines.length),
        dbQueriesPerDevice: perDevice(q0, q1, o.agents),
        connectQueriesPerDevice: perDevice(q0, qc, o.agents),
        dbWaitMs: {
          connect: qc.waitMs.map((w, i) => w - q0.waitMs[i]!),
          all: q1.waitMs.map((w, i) => w - q0.waitMs[i]!),
        },
        connectStatements: statementsBetween(q0, qc, o.agents),
        disconnects: workers.reduce((n, w) => n + w.progress.disconnects, 0),
        reasons: workers.reduce<Record<string, number>>((all, w) => {
          for (const [k, v] of Object.entries(w.progress.reasons)) all[k] = (all[k] ?? 0) + v;
          return all;
        }, {}),
      };
    } finally {
      s.stop();
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}
