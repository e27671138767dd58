import { parseDeviceTopic, TOPIC_ROOT } from '../../protocol/topics.js';

/**
 * Who is connected: a device (username = its id, password = its token) or the cloud itself (a
 * service identity that publishes desired states and reads reports).
 */
export type Identity = { kind: 'device'; deviceId: string } | { kind: 'service'; name: string };

/**
 * Broker policy as small deny-by-default functions, kept pure so that the ACL matrix can be
 * read and tested without a socket. Anything not explicitly allowed here is refused.
 */

/**
 * A device names itself: client id = device id, or `<deviceId>:<suffix>` (`:` never occurs in a
 * device id). Without this a device could take over another's session, since a new connection
 * with an existing client id disconnects the old one [MQTT-3.1.4-2]. Refusal answers CONNACK 0x02
 * "identifier rejected" [MQTT-3.1.3-9].
 */
export function clientIdAllowed(id: Identity, clientId: string): boolean {
  if (id.kind === 'service') return true;
  return clientId === id.deviceId || clientId.startsWith(`${id.deviceId}:`);
}

/**
 * Subscribe. A device may subscribe to its own desired state and its own commands, by exact topic
 * or with a trailing wildcard inside commands/ only. A filter such as `outpost/v1/devices/+/desired`
 * or `#` would match other devices' topics, so wildcards anywhere else are refused. The broker
 * answers a refused filter with SUBACK 0x80 [MQTT-3.9.3-2] and keeps the connection.
 */
export function canSubscribe(id: Identity, filter: string): boolean {
  if (id.kind === 'service') return filter === `${TOPIC_ROOT}/#` || filter.startsWith(`${TOPIC_ROOT}/`);
  const own = `${TOPIC_ROOT}/${id.deviceId}/`;
  if (!filter.startsWith(own)) return false;
  const rest = filter.slice(own.length);
  if (rest === 'desired' || rest === 'commands/#' || rest === 'commands/+') return true;
  // An exact command topic: no wildcard characters at all [MQTT-4.7.1-2, -3].
  const t = parseDeviceTopic(filter);
  return t !== null && t.deviceId === id.deviceId && t.kind === 'commands';
}

/**
 * Publish. A device writes only its own reported state, status (birth and Last Will), telemetry
 * and command responses. Publish topics never contain wildcards [MQTT-3.3.2-2]; parseDeviceTopic
 * rejects them. A refused publish makes aedes close the connection (3.1.1 has no way to NACK a
 * QoS 0/1 publish), which is also the right answer to a device that tries to write desired state.
 */
export function canPublish(id: Identity, topic: string): boolean {
  if (id.kind === 'service') return topic.startsWith(`${TOPIC_ROOT}/`) && !/[+#]/.test(topic);
  const t = parseDeviceTopic(topic);
  if (t === null || t.deviceId !== id.deviceId) return false;
  return t.kind === 'reported' || t.kind === 'status' || t.kind === 'telemetry' || t.kind === 'responses';
}
