import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CliContext } from '../../protocol/cli.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { createLogger } from '../../protocol/log.js';
import type { PredictAnswer } from '../../agent/client/index.js';
import { startCloud, type Cloud } from '../cloud.js';
import { writeFileAtomic } from '../cli/fs-util.js';
import type { RolloutDevice } from '../fleet/rollout.js';
import { agentEnv, startAgentProcess, type AgentProcess } from './agent-process.js';
import { redSquarePng } from './image.js';
import { writeDemoModelFolder } from './model-folder.js';
import { StepReporter, keepRunningText, pct, seconds } from './report.js';
import { verbRunner } from './verbs.js';

/**
 * `outpost demo`: the whole of Outpost on this machine, each step done by the real part a user
 * would use (the embedded cloud, the CLI verbs, the agent daemon as a child process, its socket).
 *
 * Layout of the demo folder (a temp dir unless --data-dir):
 *   cloud/    the cloud's data dir (catalog.db, blobs/, admin.token, cloud.json), cloud.log beside it
 *   model/    the generated model folder (model.onnx, labels.txt, alwaysai.model.json)
 *   device/   agent.json from `device provision`, models/, agent.sock, agent.log
 *   red.png   the test image
 */
export const DEMO_MODEL_ID = 'demo/colors';
export const DEMO_DEVICE_ID = 'demo-device';

export interface DemoOptions {
  dataDir?: string;
  keepRunning: boolean;
  /** Upper bound for each wait (agent socket up, model active). */
  timeoutMs: number;
  json: boolean;
}

export interface DemoResult {
  dir: string;
  temporary: boolean;
  cloud: { http: string; mqtt: string | null; adminTokenFile: string; dataDir: string };
  model: { id: string; version: number; folder: string };
  device: { id: string; config: string; socket: string; modelsDir: string; agentLog: string; agentPid: number };
  image: string;
  prediction: { label: string; confidence: number; durationMs: number | null };
  answer: PredictAnswer;
  steps: { step: string; ms: number }[];
  /** How the agent ended (null while --keep-running has not been stopped yet). */
  agentExit: number | null;
  /** Whether the demo folder was removed at the end. */
  removed: boolean;
}

const STEPS = 9;

export async function runDemo(opts: DemoOptions, ctx: CliContext): Promise<DemoResult> {
  const temporary = opts.dataDir === undefined;
  const dir = temporary ? await mkdtemp(join(tmpdir(), 'outpost-demo-')) : resolve(ctx.cwd, opts.dataDir!);
  const paths = {
    cloud: join(dir, 'cloud'),
    cloudLog: join(dir, 'cloud.log'),
    model: join(dir, 'model'),
    device: join(dir, 'device'),
    models: join(dir, 'device', 'models'),
    socket: join(dir, 'device', 'agent.sock'),
    agentLog: join(dir, 'device', 'agent.log'),
    image: join(dir, 'red.png'),
  };
  // sockaddr_un holds 108 bytes with the NUL: a longer path cannot be bound, whatever the agent does.
  if (Buffer.byteLength(paths.socket) > 107) {
    if (temporary) await rm(dir, { recursive: true, force: true });
    throw new OutpostError(
      'USAGE',
      `the agent socket path ${paths.socket} would be longer than 107 bytes (a Unix socket limit); pick a shorter --data-dir (or TMPDIR)`,
      { socket: paths.socket },
    );
  }
  await mkdir(paths.device, { recursive: true, mode: 0o700 });
  const say = new StepReporter(opts.json ? ctx.stderr : ctx.stdout, STEPS);
  say.line(`outpost demo: cloud, model, device and a prediction, all on this machine, in ${dir}`);

  // The user's own OUTPOST_* (another cloud, a token, a device's socket) must not be used:
  // the verbs find this demo's cloud through its data dir, as on a developer's machine.
  const env = { ...agentEnv(ctx.env), OUTPOST_DATA_DIR: paths.cloud, OUTPOST_LOG_LEVEL: 'silent' };
  const run = verbRunner({ cwd: dir, env, signal: ctx.signal });
  const cloudLogStream = createWriteStream(paths.cloudLog, { flags: 'a', mode: 0o600 });
  let cloud: Cloud | undefined;
  let agent: AgentProcess | undefined;
  let ok = false;
  try {
    say.begin();
    cloud = await startCloud({
      dataDir: paths.cloud,
      httpPort: 0,
      mqttPort: 0,
      log: createLogger({ name: 'outpost-cloud', destination: cloudLogStream }),
    });
    say.done('cloud', `cloud started: HTTP ${cloud.httpUrl}, MQTT ${cloud.mqttUrl ?? '(none)'}`);

    await writeDemoModelFolder(paths.model, DEMO_MODEL_ID, run);
    say.done(
      'configure',
      `model folder generated (ONNX colour classifier: red, green, blue); \`outpost model configure\` wrote its alwaysai.model.json`,
    );

    const published = await run<{ id: string; version: number; unchanged?: boolean }>(['model', 'publish'], {
      cwd: paths.model,
    });
    say.done(
      'publish',
      `\`outpost model publish\`: ${published.id} version ${published.version}${published.unchanged ? ' (unchanged, already published)' : ''}`,
    );

    const provision = () =>
      run<{ agentConfig: string }>(['device', 'provision', DEMO_DEVICE_ID, '--out', paths.device]);
    let again = false;
    const provisioned = await provision().catch(async (err: unknown) => {
      // A rerun on the same --data-dir: the cloud remembers the device; issue it new credentials.
      if ((err as OutpostError).code !== 'DEVICE_EXISTS') throw err;
      again = true;
      await run(['device', 'remove', DEMO_DEVICE_ID]);
      return provision();
    });
    say.done(
      'provision',
      `\`outpost device provision\`: ${DEMO_DEVICE_ID}${again ? ' (again, new credentials)' : ''}, credentials in ${provisioned.agentConfig}`,
    );

    agent = startAgentProcess({
      config: provisioned.agentConfig,
      modelsDir: paths.models,
      socket: paths.socket,
      logFile: paths.agentLog,
      env: ctx.env,
    });
    await agent.waitLive(opts.timeoutMs, ctx.signal);
    say.done('agent', `agent running: \`outpost-agent run\` as pid ${agent.pid}, socket ${paths.socket}`);

    const ref = `${published.id}@${published.version}`;
    await run(['deploy', ref, '--device', DEMO_DEVICE_ID]);
    say.done('deploy', `\`outpost deploy ${ref} --device ${DEMO_DEVICE_ID}\`: new signed desired state sent`);

    const states = await waitActive(run, agent, published.id, published.version, opts.timeoutMs, ctx.signal);
    say.done('active', `\`outpost rollout status\`: ${DEMO_DEVICE_ID} reports ${ref} active (${states.join(' -> ')})`);

    await writeFileAtomic(paths.image, await redSquarePng());
    const answer = await run<PredictAnswer>([
      'predict',
      paths.image,
      '--model',
      published.id,
      '--socket',
      paths.socket,
      '--top-k',
      '3',
      '--confidence',
      '0',
    ]);
    const preds = (answer.predictions ?? []) as { label?: string; confidence?: number }[];
    const top = preds[0];
    if (!top || typeof top.label !== 'string' || typeof top.confidence !== 'number') {
      throw new OutpostError(
        'INTERNAL',
        `the agent answered without a classification: ${JSON.stringify(answer).slice(0, 300)}`,
      );
    }
    const durationMs = typeof answer.duration === 'number' ? answer.duration * 1000 : null;
    say.done(
      'predict',
      `\`outpost predict red.png\` through the agent's socket: ${top.label} ${pct(top.confidence)}, inference ${durationMs === null ? '?' : `${durationMs.toFixed(2)} ms`}`,
    );
    say.detail(preds.map((p) => `${p.label} ${pct(p.confidence)}`).join(', '));

    const result: DemoResult = {
      dir,
      temporary,
      cloud: { http: cloud.httpUrl, mqtt: cloud.mqttUrl, adminTokenFile: cloud.adminTokenFile, dataDir: paths.cloud },
      model: { id: published.id, version: published.version, folder: paths.model },
      device: {
        id: DEMO_DEVICE_ID,
        config: provisioned.agentConfig,
        socket: paths.socket,
        modelsDir: paths.models,
        agentLog: paths.agentLog,
        agentPid: agent.pid,
      },
      image: paths.image,
      prediction: { label: top.label, confidence: top.confidence, durationMs },
      answer,
      steps: say.timings,
      agentExit: null,
      removed: false,
    };

    if (opts.keepRunning) {
      say.line(
        keepRunningText({
          http: cloud.httpUrl,
          mqtt: cloud.mqttUrl,
          adminTokenFile: cloud.adminTokenFile,
          cloudDataDir: paths.cloud,
          socket: paths.socket,
          agentLog: paths.agentLog,
          agentConfig: provisioned.agentConfig,
          model: published.id,
          device: DEMO_DEVICE_ID,
          image: paths.image,
        }),
      );
      if (opts.json) ctx.stdout.write(JSON.stringify(result) + '\n');
      await untilAborted(ctx.signal, agent);
      say.begin();
    }

    const exit = await agent.stop();
    agent = undefined;
    await cloud.close();
    cloud = undefined;
    result.agentExit = exit;
    if (exit !== 0)
      throw new OutpostError(
        'DEMO_AGENT_EXITED',
        `the agent did not stop cleanly (exit ${exit}); see ${paths.agentLog}`,
        { exit, logFile: paths.agentLog },
      );
    say.done(
      'stop',
      `stopped the agent (exit ${exit}) and the cloud${temporary ? `; removed ${dir}` : `; data kept in ${dir}`}`,
    );
    result.removed = temporary;
    result.steps = say.timings;
    say.line(`done in ${seconds(say.timings.reduce((a, s) => a + s.ms, 0))}`);
    ok = true;
    return result;
  } catch (err) {
    // Ctrl-C cuts whatever step was running; say that, not the step's own complaint about it.
    if (ctx.signal.aborted) throw ctx.signal.reason instanceof Error ? ctx.signal.reason : err;
    throw err;
  } finally {
    // On failure everything still stops, and the folder stays so that its logs can be read.
    if (agent) await agent.stop().catch(() => undefined);
    if (cloud) await cloud.close().catch(() => undefined);
    await new Promise<void>((r) => cloudLogStream.end(() => r()));
    if ((ok || ctx.signal.aborted) && temporary) await rm(dir, { recursive: true, force: true });
    else if (!ok) say.line(`the demo's files (logs: ${paths.cloudLog}, ${paths.agentLog}) are kept in ${dir}`);
  }
}

/**
 * Polls `outpost rollout status` (the cloud's view, built only from the device's reports) until
 * the device has converged with the model active at `version`. Returns the states seen, in order.
 */
async function waitActive(
  run: ReturnType<typeof verbRunner>,
  agent: AgentProcess,
  model: string,
  version: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const seen: string[] = [];
  let last = 'no report from the device yet';
  for (;;) {
    signal.throwIfAborted();
    await agent.assertRunning();
    const { devices } = await run<{ devices: RolloutDevice[] }>(['rollout', 'status']);
    const d = devices.find((x) => x.device === DEMO_DEVICE_ID);
    const m = d?.models.find((x) => x.id === model);
    if (d && m) {
      const state = m.state === 'downloading' && m.progress ? 'downloading' : m.state;
      const shown = state === 'unreported' ? 'not reported yet' : state;
      if (seen[seen.length - 1] !== shown) seen.push(shown);
      last = `device ${d.status ?? 'status unknown'}, applied revision ${d.appliedRevision ?? '-'}/${d.revision}, ${model} desired ${m.desired ?? '-'} active ${m.active ?? '-'} state ${m.state}${m.error ? ` (${m.error.code}: ${m.error.message})` : ''}`;
      // A failure is not final: the agent retries with back-off, so it is reported only at the deadline.
      if (d.converged && m.active === version && m.state === 'active') return seen;
    }
    if (Date.now() > deadline) {
      throw new OutpostError(
        'DEMO_TIMEOUT',
        `${DEMO_DEVICE_ID} did not report ${model}@${version} active within ${timeoutMs / 1000} s; last seen: ${last}; agent log: ${agent.logFile}`,
        { step: 'model active', model, version },
      );
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Waits for Ctrl-C (ctx.signal); fails if the agent dies meanwhile. */
async function untilAborted(signal: AbortSignal, agent: AgentProcess): Promise<void> {
  while (!signal.aborted) {
    await agent.assertRunning().catch((err: unknown) => {
      // Ctrl-C in a terminal reaches the agent too (same process group): that exit is expected.
      if (!signal.aborted) throw err;
    });
    await new Promise<void>((r) => {
      const wake = (): void => {
        clearTimeout(t);
        signal.removeEventListener('abort', wake);
        r();
      };
      const t = setTimeout(wake, 500);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}
