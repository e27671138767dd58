import mqtt, { type ISubscriptionMap, type MqttClient } from 'mqtt';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';

/**
 * The cloud's MQTT session, as the service identity: publishes desired states (retained, QoS 1)
 * and receives reports. It is an ordinary MQTT client, so the same code works against the
 * embedded aedes broker and any external MQTT 3.1.1/5 broker (Mosquitto, EMQX).
 */
export interface PublisherOptions {
  url: string;
  username: string;
  password: string;
  clientId?: string;
  log: Logger;
  /** Called on every (re)connect, after the report subscriptions are in place. */
  onConnect?: () => void;
  onMessage?: (topic: string, payload: Buffer) => void;
  /** Extra TLS options for mqtts:// (e.g. `ca`). */
  tls?: { ca?: string | Buffer };
  /**
   * A control channel on the same connection (Mosquitto's dynamic-security admin, dynsec.ts):
   * `topic` is subscribed first and its messages go to `onMessage`; `prepare` runs before the
   * report subscriptions and the republication (it grants the rights they need); `onClose` fails
   * what waits on the channel.
   */
  control?: {
    topic: string;
    /** Called once, before the first connect, with the channel's publish (publishControl). */
    bind: (publish: (topic: string, payload: string) => Promise<void>) => void;
    onMessage: (payload: Buffer) => void;
    prepare: () => Promise<void>;
    onClose: () => void;
  };
}

export interface Publisher {
  publishDesired(deviceId: string, payload: string): Promise<void>;
  /** Removes the retained desired state (a zero-byte retained message [MQTT-3.3.1-10]). */
  clearDesired(deviceId: string): Promise<void>;
  publishCommand(deviceId: string, cmd: string, payload: string): Promise<void>;
  /**
   * Subscribes again to the retained reports and statuses, which makes the broker send every
   * device's retained one again [MQTT-3.8.4-3]: how a replica that just became the leader catches
   * up on what was published while no replica was writing.
   */
  resubscribeReports(): Promise<void>;
  /**
   * QoS 0, refused at once when offline: a control request must not sit in mqtt.js's offline
   * queue and be replayed after a reconnect (a late createClient could undo a later delete).
   */
  publishControl(topic: string, payload: string): Promise<void>;
  readonly connected: boolean;
  close(): Promise<void>;
}

export async function connectPublisher(opts: PublisherOptions): Promise<Publisher> {
  const log = moduleLogger(opts.log, 'fleet-publisher');
  const client: MqttClient = mqtt.connect(opts.url, {
    username: opts.username,
    password: opts.password,
    clientId: opts.clientId ?? `outpost-cloud-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    // A clean session: the cloud republishes from its database on every connect, so it never
    // needs the broker to have kept anything for it.
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
  });
  const control = opts.control;
  const publishControl = (topic: string, payload: string): Promise<void> =>
    client.connected
      ? client.publishAsync(topic, payload, { qos: 0 }).then(() => undefined)
      : Promise.reject(new Error('not connected to the broker'));
  control?.bind(publishControl);
  client.on('message', (topic, payload) => {
    if (control && topic === control.topic) control.onMessage(payload);
    else opts.onMessage?.(topic, payload);
  });
  if (control) client.on('close', () => control.onClose());
  const subscribeReports = (): void => {
    // Telemetry is published at QoS 0; subscribing at 1 grants the publisher's QoS, no more.
    client.subscribe(
      [topics.allReported, topics.allStatus, topics.allResponses, topics.allTelemetry],
      { qos: 1 },
      (err) => {
        if (err) log.error({ err }, 'cannot subscribe to device reports');
        else log.info({ url: opts.url }, 'fleet publisher connected');
        opts.onConnect?.();
      },
    );
  };
  client.on('connect', () => {
    if (!control) return subscribeReports();
    client.subscribe(control.topic, { qos: 0 }, (err) => {
      if (err) log.error({ err }, 'cannot subscribe to the control channel');
      control
        .prepare()
        .catch((e: unknown) => {
          // Without its rights the service's publishes are dropped; the next connect tries again.
          log.error({ err: e }, 'control channel preparation failed');
        })
        .finally(subscribeReports);
    });
  });
  client.on('error', (err) => log.warn({ err: err.message }, 'fleet publisher error'));
  client.on('offline', () => log.warn('fleet publisher offline; will reconnect'));

  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      client.end(true);
      reject(
        new OutpostError(
          'BROKER_UNREACHABLE',
          `cannot connect to the MQTT broker at ${opts.url} as ${opts.username} within 10 s`,
          { url: opts.url },
        ),
      );
    }, 10_000);
    client.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
    client.once('error', (err) => {
      if ((err as { code?: number }).code === 4 || (err as { code?: number }).code === 5) {
        clearTimeout(t);
        client.end(true);
        reject(
          new OutpostError(
            'BROKER_UNREACHABLE',
            `the MQTT broker at ${opts.url} refused the service identity ${opts.username}: ${err.message}`,
            { url: opts.url },
          ),
        );
      }
    });
  });

  const publish = (topic: string, payload: string, retain: boolean): Promise<void> =>
    client.publishAsync(topic, payload, { qos: 1, retain }).then(() => undefined);

  return {
    publishDesired: (id, payload) => publish(topics.desired(id), payload, true),
    clearDesired: (id) => publish(topics.desired(id), '', true),
    publishCommand: (id, cmd, payload) => publish(topics.command(id, cmd), payload, false),
    // mqtt.js drops a SUBSCRIBE for filters it already holds unless asked with `resubscribe`.
    resubscribeReports: () =>
      client
        .subscribeAsync({
          [topics.allReported]: { qos: 1 },
          [topics.allStatus]: { qos: 1 },
          // Read by mqtt.js from the map itself (client.js subscribe), not typed there.
          resubscribe: true,
        } as unknown as ISubscriptionMap)
        .then(() => undefined),
    publishControl,
    get connected() {
      return client.connected;
    },
    close: () => client.endAsync(true).then(() => undefined),
  };
}
