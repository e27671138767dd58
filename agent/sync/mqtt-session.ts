import { EventEmitter } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import { openMqttClient } from './mqtt-connect.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { Backoff } from './backoff.js';
import { STATUS_OFFLINE, STATUS_ONLINE } from '../../protocol/topics.js';

/**
 * The agent's one MQTT connection. Only this file knows MQTT (mqtt-connect.ts opens its client).
 *
 * - Persistent session (clean=false, clientId = device id) so QoS 1 desired states published while
 *   the device was offline are delivered when it returns; the desired state is also retained, so a
 *   device whose session expired still gets it on subscribe.
 * - Last Will `offline` (retained) on the status topic, birth `online` after every connect.
 * - Reconnect with exponential back-off and full jitter, done here (mqtt.js's own reconnect is a
 *   fixed period with no jitter), with reconnectPeriod=0 so the library never races us.
 * - Bounded offline queue: nothing is queued while disconnected. Reported state is a retained
 *   document, so only the newest one matters: it is kept and published on reconnect. Telemetry
 *   taken while offline is dropped (it is a sample, not a record).
 */
export interface SessionTopics {
  desired: string;
  /** A filter for the commands, e.g. `.../commands/+`. */
  commands: string;
  reported: string;
  status: string;
  telemetry: string;
  /** The topic a command's response goes to. */
  response(command: string): string;
  /** The command name of a topic that matched `commands`, or null. */
  commandOf(topic: string): string | null;
}

export interface SessionOptions {
  url: string;
  deviceId: string;
  username: string;
  password: string;
  topics: SessionTopics;
  keepaliveSeconds?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** PEM CA for mqtts:// with a private CA. */
  ca?: string;
  log: Logger;
  agentVersion?: string;
}

export interface MqttSessionEvents {
  desired: [payload: Buffer];
  command: [name: string, payload: Buffer];
  connected: [];
  disconnected: [reason: string];
}

export class MqttSession extends EventEmitter<MqttSessionEvents> {
  private client: MqttClient | null = null;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pendingReported: string | null = null;
  /** The newest reported document, re-sent on every connection. */
  private lastReported: string | null = null;
  private stopping = false;
  /** Counts CONNACKs, so that the set-up of a connection that has since dropped does nothing. */
  private connection = 0;
  private readonly log: Logger;

  constructor(private readonly opts: SessionOptions) {
    super();
    this.log = moduleLogger(opts.log, 'mqtt');
    this.backoff = new Backoff(opts.reconnectMinMs ?? 500, opts.reconnectMaxMs ?? 60_000);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const { opts } = this;
    const options: IClientOptions = {
      clientId: opts.deviceId,
      username: opts.username,
      password: opts.password,
      clean: false,
      keepalive: opts.keepaliveSeconds ?? 30,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      queueQoSZero: false,
      resubscribe: false,
      // mqtt-packet's number cache is 65,536 two-byte Buffers (about 6 MiB of heap, a third of the
      // idle agent's above onnxruntime's floor: docs/systemd.md, Footprint) to save one 2-byte
      // allocation per packet id; a device sends a few packets a minute.
      writeCache: false,
      ca: opts.ca,
      will: {
        topic: opts.topics.status,
        payload: Buffer.from(statusDoc('offline', opts.agentVersion)),
        qos: 1,
        retain: true,
      },
    };
    const client = openMqttClient(opts.url, options);
    this.client = client;
    client.on('connect', (connack) => void this.onConnect(++this.connection, connack.sessionPresent));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('close', () => this.onClose('connection closed'));
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      const hint = typeof code === 'string' ? tlsHint(code) : null;
      this.log.warn(
        { err: { message: err.message, code }, ...(hint ? { tlsRefused: true } : {}) },
        hint ? `${hint} (${err.message}); retrying` : 'mqtt error',
      );
    });
  }

  /** Publishes the reported state (retained, QoS 1) now, or on the next connect. */
  publishReported(doc: unknown): void {
    this.pendingReported = JSON.stringify(doc);
    this.lastReported = this.pendingReported;
    this.flushReported();
  }

  publishTelemetry(doc: unknown): void {
    if (!this.connected) return;
    this.client!.publish(this.opts.topics.telemetry, JSON.stringify(doc), { qos: 0 });
  }

  respond(command: string, doc: unknown): void {
    if (!this.connected) return;
    this.client!.publish(this.opts.topics.response(command), JSON.stringify(doc), { qos: 1 });
  }

  /** Publishes `offline` (the broker would only send the will on an unclean loss) and disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await Promise.race([
        client.publishAsync(this.opts.topics.status, statusDoc('offline', this.opts.agentVersion), {
          qos: 1,
          retain: true,
        }),
        new Promise((r) => setTimeout(r, 2000)),
      ]).catch(() => undefined);
    }
    // mqtt.js's end() without force waits until every QoS 1 publish is acknowledged, which never
    // happens once the connection is gone or the broker stopped answering: stop() then hung
    // forever (500 sessions in bench/broker-restart.ts). Nothing unacknowledged is lost by giving
    // up here: the reported state is retained and re-sent by the next run, the status falls back
    // to the Last Will.
    for (const id of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(id));
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
  }

  private async onConnect(connection: number, sessionPresent: boolean): Promise<void> {
    this.backoff.reset();
    const client = this.client!;
    const current = () => connection === this.connection && client.connected && !this.stopping;
    this.log.info({ sessionPresent }, 'connected to broker');
    try {
      // Subscribing again even with a present session is harmless and repairs a session that
      // lost its subscriptions (a broker without persistence).
      await client.subscribeAsync([this.opts.topics.desired, this.opts.topics.commands], { qos: 1 });
      await client.publishAsync(this.opts.topics.status, statusDoc('online', this.opts.agentVersion), {
        qos: 1,
        retain: true,
      });
    } catch (err) {
      // A dropped connection already scheduled its reconnect in onClose.
      if (!current()) return;
      this.log.warn({ err }, 'subscribe or birth message failed; reconnecting');
      // Destroying the socket (not end(), which closes mqtt.js's stores for good) goes through
      // onClose and the back-off like any other lost connection.
      client.stream.destroy();
      return;
    }
    // The birth of a connection that dropped is re-sent and acknowledged on a later one: that
    // later connection announces itself.
    if (!current()) return;
    // Every connection re-sends the last reported state, even one the broker acknowledged: a
    // broker (or cloud replica) killed right after its PUBACK may never have passed it on, and a
    // present session does not bring it back. Reports are whole documents, so a repeat is harmless.
    if (this.pendingReported === null) this.pendingReported = this.lastReported;
    this.flushReported();
    this.emit('connected');
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.opts.topics.desired) {
      this.emit('desired', payload);
      return;
    }
    const command = this.opts.topics.commandOf(topic);
    if (command) this.emit('command', command, payload);
  }

  private onClose(reason: string): void {
    if (this.stopping) return;
    this.emit('disconnected', reason);
    if (this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.log.info({ delayMs: delay }, 'broker connection lost; reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      // Keep the stores: QoS 1 publishes not yet acknowledged are re-sent on the new connection
      // [MQTT-4.4.0-1] and their callbacks settle; reconnect() without them starts empty stores
      // and leaves those callbacks pending forever.
      const c = this.client;
      if (!this.stopping && c) c.reconnect({ incomingStore: c.incomingStore, outgoingStore: c.outgoingStore });
    }, delay);
  }

  private flushReported(): void {
    if (!this.connected || this.pendingReported === null) return;
    const body = this.pendingReported;
    this.client!.publish(this.opts.topics.reported, body, { qos: 1, retain: true }, (err) => {
      // Keep it for the next connect unless a newer document replaced it meanwhile.
      if (!err && this.pendingReported === body) this.pendingReported = null;
    });
  }
}

/**
 * What to do about a refused TLS handshake with the broker (Node's certificate check codes), or
 * null for any other error. The session retries either way: a fixed config or CA is picked up by
 * a restart, a renewed broker certificate by the next attempt.
 */
function tlsHint(code: string): string | null {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return "the broker's TLS certificate does not name the host in cloud.mqtt; use the host the certificate was made for";
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return "the broker's TLS certificate is outside its validity period; renew it on the cloud, or check this device's clock";
  if (
    /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED)$/.test(
      code,
    )
  ) {
    return "the broker's TLS certificate is not trusted by this device; put the cloud's CA certificate (PEM) in cloud.ca of agent.json, as `outpost device provision` writes it";
  }
  return null;
}

/**
 * The status payload is the plain word `online` / `offline`, as docs/protocol.md defines it: the
 * Last Will is fixed at connect time, so a timestamp in it would lie; the agent version travels in
 * the reported state instead.
 */
function statusDoc(state: 'online' | 'offline', _agentVersion?: string): string {
  return state === 'online' ? STATUS_ONLINE : STATUS_OFFLINE;
}
