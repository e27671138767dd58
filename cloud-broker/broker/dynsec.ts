import { randomBytes } from 'node:crypto';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';

/**
 * Mosquitto 2's dynamic-security plugin, spoken over an MQTT connection the cloud already has.
 *
 * The plugin reads JSON `{"commands": [...]}` published on `$CONTROL/dynamic-security/v1` and
 * answers with `{"responses": [...]}` on `$CONTROL/dynamic-security/v1/response`, a topic every
 * admin subscriber receives (so other replicas' answers arrive here too). Each command carries a
 * `correlationData` string that the plugin copies into its answer; ours start with a random
 * per-process prefix, and answers without it are someone else's and are ignored.
 *
 * Invariants:
 * - every request ends: answered, refused (DYNSEC_REFUSED), timed out (DYNSEC_TIMEOUT) or failed
 *   by a lost connection (DYNSEC_DISCONNECTED); nothing waits forever;
 * - at most `maxInFlight` requests wait at once (DYNSEC_BUSY beyond), so a broker that stopped
 *   answering cannot make the cloud pile up timers and closures;
 * - a password never reaches a log line: only the command name and the user name are logged.
 *
 * A refused publish to $CONTROL (a user without the admin role) gets no answer at all from the
 * plugin, which is why the timeout message says what to check.
 */
export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;

/** The one thing DynsecAdmin needs from the connection: publish a request. */
export interface ControlChannel {
  publish(topic: string, payload: string): Promise<void>;
}

export interface DynsecCommand {
  command: string;
  [key: string]: unknown;
}

/** One answer of the plugin: `error` set when the command was refused; `data` for queries. */
export interface DynsecResponse {
  command: string;
  error?: string;
  data?: Record<string, unknown>;
  correlationData?: string;
}

export interface DynsecAdminOptions {
  channel: ControlChannel;
  log: Logger;
  /** Who the channel is logged in as, for the messages (never its password). */
  username: string;
  timeoutMs?: number;
  maxInFlight?: number;
}

interface Pending {
  command: string;
  resolve: (r: DynsecResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** The largest answer taken in; listClients is paged well below it (dynsec-directory.ts). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * Parses one message of the response topic; null when it is not the plugin's shape (a stray
 * publish by another admin must not throw inside the MQTT client's message handler).
 */
export function parseDynsecResponses(payload: unknown): DynsecResponse[] | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const list = (payload as { responses?: unknown }).responses;
  if (!Array.isArray(list)) return null;
  const out: DynsecResponse[] = [];
  for (const r of list) {
    if (typeof r !== 'object' || r === null) continue;
    const { command, error, data, correlationData } = r as Record<string, unknown>;
    if (typeof command !== 'string') continue;
    out.push({
      command,
      ...(typeof error === 'string' ? { error } : {}),
      ...(typeof data === 'object' && data !== null && !Array.isArray(data)
        ? { data: data as Record<string, unknown> }
        : {}),
      ...(typeof correlationData === 'string' ? { correlationData } : {}),
    });
  }
  return out;
}

export class DynsecAdmin {
  private readonly pending = new Map<string, Pending>();
  private readonly prefix = `outpost-${randomBytes(6).toString('hex')}-`;
  private seq = 0;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;

  constructor(private readonly opts: DynsecAdminOptions) {
    this.log = moduleLogger(opts.log, 'dynsec');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 64;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one command and resolves with its answer. A refusal rejects with DYNSEC_REFUSED unless
   * its error text is in `accept` (e.g. "Client already exists" for an idempotent create).
   */
  async run(cmd: DynsecCommand, accept: readonly string[] = []): Promise<DynsecResponse> {
    if (this.pending.size >= this.maxInFlight)
      throw new OutpostError(
        'DYNSEC_BUSY',
        `${this.pending.size} dynamic-security commands are already waiting for the broker; retry in a moment`,
        { inFlight: this.pending.size },
      );
    const correlationData = `${this.prefix}${++this.seq}`;
    const answer = new Promise<DynsecResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationData);
        reject(
          new OutpostError(
            'DYNSEC_TIMEOUT',
            `the broker did not answer ${cmd.command} within ${this.timeoutMs / 1000} s: check that mosquitto loads the dynamic-security plugin and that ${this.opts.username} has its admin role`,
            { command: cmd.command, timeoutMs: this.timeoutMs },
          ),
        );
      }, this.timeoutMs);
      this.pending.set(correlationData, { command: cmd.command, resolve, reject, timer });
    });
    try {
      await this.opts.channel.publish(DYNSEC_TOPIC, JSON.stringify({ commands: [{ ...cmd, correlationData }] }));
    } catch (err) {
      this.settle(correlationData)?.reject(
        new OutpostError('DYNSEC_DISCONNECTED', `could not send ${cmd.command} to the broker: ${String(err)}`, {
          command: cmd.command,
        }),
      );
    }
    const r = await answer;
    if (r.error !== undefined && !accept.includes(r.error)) {
      this.log.warn({ command: cmd.command, username: cmd.username, error: r.error }, 'dynsec refused');
      throw new OutpostError('DYNSEC_REFUSED', `the broker refused ${cmd.command}: ${r.error}`, {
        command: cmd.command,
        error: r.error,
        ...(typeof cmd.username === 'string' ? { username: cmd.username } : {}),
        ...(typeof cmd.rolename === 'string' ? { rolename: cmd.rolename } : {}),
      });
    }
    this.log.debug({ command: cmd.command, username: cmd.username, error: r.error }, 'dynsec answered');
    return r;
  }

  /** Feeds one message of DYNSEC_RESPONSE_TOPIC; answers that are not ours are ignored. */
  handleResponse(payload: Buffer): void {
    if (payload.length > MAX_RESPONSE_BYTES) {
      this.log.warn({ bytes: payload.length }, 'dynsec answer too large; ignored');
      return;
    }
    let parsed: DynsecResponse[] | null;
    try {
      parsed = parseDynsecResponses(JSON.parse(payload.toString('utf8')));
    } catch {
      parsed = null;
    }
    if (parsed === null) {
      this.log.warn({ bytes: payload.length }, 'a message on the dynsec response topic is not an answer; ignored');
      return;
    }
    for (const r of parsed) {
      if (r.correlationData === undefined || !r.correlationData.startsWith(this.prefix)) continue;
      this.settle(r.correlationData)?.resolve(r);
    }
  }

  /** The connection dropped: whatever was sent may or may not have been applied; fail it all. */
  connectionLost(): void {
    for (const id of [...this.pending.keys()]) {
      const p = this.settle(id);
      p?.reject(
        new OutpostError(
          'DYNSEC_DISCONNECTED',
          `the broker connection dropped before it answered ${p.command}; the cloud reconciles the broker when it reconnects`,
          { command: p.command },
        ),
      );
    }
  }

  private settle(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(id);
    return p;
  }
}
