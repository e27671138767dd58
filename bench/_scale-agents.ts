/**
 * A child process of bench/scale.ts holding many light agents (bench/_fleet-helpers.ts: the real
 * MqttSession, Reconciler and Store of a device, no runtime). The parent sends it provisioned
 * agent.json drafts over IPC and drives it phase by phase; it answers with wall-clock times
 * (performance.timeOrigin + now, comparable across processes on one machine), never with
 * conclusions, so all the arithmetic is in one place (scale.ts).
 *
 *   parent -> {t: 'open', configs, root, overrides}      <- {t: 'opened'}
 *   parent -> {t: 'connect'}                             <- {t: 'connected', at: number[]}
 *   parent -> {t: 'watch', model, version}               <- {t: 'received', at: number[]}, then {t: 'active', at}
 *   parent -> {t: 'stop'}                                <- {t: 'stopped'}, exit
 *   every second while a phase runs                      <- {t: 'progress', connected, received, active}
 *
 * Agents are spread over a few such processes so that one process's event loop is not what the
 * connect storm measures, and so the file-descriptor limit (soft `ulimit -n`) holds per process.
 */
import { parseDesiredSigned, parseEnvelope } from '../protocol/desired-state.js';
import type { AgentConfigDraft } from '../cloud-broker/fleet/provision.js';
import { Writable } from 'node:stream';
import { createLogger } from '../protocol/log.js';
import { createLightAgent, type LightAgent } from './_fleet-helpers.js';

export type ToWorker =
  | { t: 'open'; configs: AgentConfigDraft[]; root: string; overrides: Record<string, unknown> }
  | { t: 'connect' }
  | { t: 'watch'; model: string; version: number }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'opened' }
  | { t: 'connected'; at: number[] }
  | { t: 'received'; at: number[] }
  | { t: 'active'; at: number[] }
  | {
      t: 'progress';
      connected: number;
      received: number;
      active: number;
      disconnects: number;
      /** The agents' warnings by message, with counts. */
      reasons: Record<string, number>;
    }
  | { t: 'stopped' }
  | { t: 'error'; message: string };

const now = () => performance.timeOrigin + performance.now();
const send = (m: FromWorker) => process.send!(m);

type Agent = LightAgent & { connect(): void };
let agents: Agent[] = [];
const connectedAt = new Map<string, number>();
const receivedAt = new Map<string, number>();
const activeAt = new Map<string, number>();
let disconnects = 0;
/** The agents' warnings (a refused connect, a timed-out download), by message, with counts. */
const reasons: Record<string, number> = {};
const log = createLogger({
  level: 'warn',
  destination: new Writable({
    write(line: Buffer, _enc, done) {
      try {
        const l = JSON.parse(line.toString()) as { msg?: string; err?: { message?: string } };
        const key = `${l.msg ?? '?'}${l.err?.message ? `: ${l.err.message}` : ''}`.slice(0, 120);
        reasons[key] = (reasons[key] ?? 0) + 1;
      } catch {
        // Not one JSON line: nothing to count.
      }
      done();
    },
  }),
});
let watching: { model: string; version: number } | null = null;
let progress: NodeJS.Timeout | null = null;

/** True when this desired-state payload asks for `watching` (parsed as the agent parses it). */
function asksFor(payload: Buffer): boolean {
  if (!watching) return false;
  try {
    const signed = parseDesiredSigned(parseEnvelope(JSON.parse(payload.toString('utf8'))).signed);
    return signed.models.some((m) => m.id === watching!.model && m.version === watching!.version);
  } catch {
    return false;
  }
}

function checkActive(): void {
  if (!watching) return;
  for (const a of agents)
    if (!activeAt.has(a.id) && a.activeAt(watching.model, watching.version)) activeAt.set(a.id, now());
}

function startProgress(): void {
  progress ??= setInterval(() => {
    checkActive();
    send({
      t: 'progress',
      connected: connectedAt.size,
      received: receivedAt.size,
      active: activeAt.size,
      disconnects,
      reasons,
    });
  }, 1000);
}

async function open(m: Extract<ToWorker, { t: 'open' }>): Promise<void> {
  // Opened a few at a time: each opens a store and a journal, which is disk work, not the storm.
  for (let i = 0; i < m.configs.length; i += 50)
    agents.push(
      ...(await Promise.all(m.configs.slice(i, i + 50).map((c) => createLightAgent(c, m.root, log, m.overrides)))),
    );
  for (const a of agents) {
    a.session.on('connected', () => {
      if (connectedAt.has(a.id)) return;
      connectedAt.set(a.id, now());
      if (connectedAt.size === agents.length) send({ t: 'connected', at: [...connectedAt.values()] });
    });
    a.session.on('disconnected', () => disconnects++);
    a.session.on('desired', (payload: Buffer) => {
      if (!receivedAt.has(a.id) && asksFor(payload)) {
        receivedAt.set(a.id, now());
        if (receivedAt.size === agents.length) send({ t: 'received', at: [...receivedAt.values()] });
      }
    });
  }
  send({ t: 'opened' });
}

async function watchActive(): Promise<void> {
  while (watching && activeAt.size < agents.length) {
    checkActive();
    await new Promise((r) => setTimeout(r, 100));
  }
  if (watching) send({ t: 'active', at: [...activeAt.values()] });
}

async function stop(): Promise<void> {
  watching = null;
  if (progress) clearInterval(progress);
  await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
  agents = [];
  send({ t: 'stopped' });
  process.disconnect();
}

process.on('message', (m: ToWorker) => {
  const step = async () => {
    if (m.t === 'open') await open(m);
    else if (m.t === 'connect') {
      startProgress();
      for (const a of agents) a.connect();
    } else if (m.t === 'watch') {
      watching = { model: m.model, version: m.version };
      void watchActive();
    } else if (m.t === 'stop') await stop();
  };
  step().catch((err: Error) => send({ t: 'error', message: err.stack ?? String(err) }));
});
// The parent gone (killed, or its bench aborted) means this process has nothing left to do.
process.on('disconnect', () => process.exit(0));
