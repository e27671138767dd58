import type { Writable } from 'node:stream';

/**
 * The demo's human output: one short line per step, numbered, with how long it took. With --json
 * these lines go to stderr so that stdout carries only the one JSON result.
 */
export class StepReporter {
  private n = 0;
  private started = Date.now();
  readonly timings: { step: string; ms: number }[] = [];

  constructor(
    private readonly out: Writable,
    private readonly total: number,
  ) {}

  line(text: string): void {
    this.out.write(text + '\n');
  }

  /** Starts timing the next step (its line is printed by done()). */
  begin(): void {
    this.started = Date.now();
  }

  done(step: string, text: string): void {
    const ms = Date.now() - this.started;
    this.timings.push({ step, ms });
    this.n += 1;
    this.line(`[${this.n}/${this.total}] ${text} (${seconds(ms)})`);
    this.started = Date.now();
  }

  /** An indented detail under the last step. */
  detail(text: string): void {
    this.line(`      ${text}`);
  }
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function pct(c: unknown): string {
  return typeof c === 'number' ? `${(c * 100).toFixed(1)}%` : '?';
}

export interface KeepRunningInfo {
  http: string;
  mqtt: string | null;
  adminTokenFile: string;
  cloudDataDir: string;
  socket: string;
  agentLog: string;
  agentConfig: string;
  model: string;
  device: string;
  image: string;
}

/** What to try while the demo stays up: the real verbs against this cloud and this agent. */
export function keepRunningText(i: KeepRunningInfo): string {
  const [owner, name] = i.model.split('/');
  return [
    '',
    'Everything keeps running. Try, in another terminal (inside this repository):',
    `  cloud HTTP API   ${i.http}`,
    `  MQTT broker      ${i.mqtt ?? '(none)'}`,
    `  admin token      ${i.adminTokenFile}`,
    `  agent socket     ${i.socket}`,
    `  agent log        ${i.agentLog}`,
    '',
    `  export OUTPOST_DATA_DIR=${i.cloudDataDir}    # the CLI finds this cloud and its admin token there`,
    '  npx outpost model list',
    '  npx outpost rollout status',
    `  npx outpost device show ${i.device}`,
    `  npx outpost predict ${i.image} --model ${i.model} --socket ${i.socket}`,
    `  curl --unix-socket ${i.socket} http://agent/v2/models/${owner}%2F${name}`,
    `  curl --unix-socket ${i.socket} -H 'Content-Type: image/png' --data-binary @${i.image} http://agent/v1/models/${owner}/${name}/predict`,
    '',
    'Press Ctrl-C to stop the agent and the cloud.',
  ].join('\n');
}
