import { OutpostError } from './errors/index.js';

/**
 * The MQTT topic tree of Outpost, versioned so that a future v2 can live beside v1 on one broker:
 *
 *   outpost/v1/devices/{id}/desired          cloud -> device, retained, QoS 1, signed document
 *   outpost/v1/devices/{id}/reported         device -> cloud, retained, QoS 1
 *   outpost/v1/devices/{id}/status           device -> cloud, retained: "online" / "offline" (Last Will)
 *   outpost/v1/devices/{id}/telemetry        device -> cloud, QoS 0
 *   outpost/v1/devices/{id}/commands/{cmd}   cloud -> device, QoS 1, not retained
 *   outpost/v1/devices/{id}/responses/{cmd}  device -> cloud, QoS 1, not retained
 *
 * A device id is one topic level and contains no `/`, `+`, `#` or NUL, so building a topic from a
 * parsed id can never reach another device's subtree.
 */
export const TOPIC_ROOT = 'outpost/v1/devices';

export const STATUS_ONLINE = 'online';
export const STATUS_OFFLINE = 'offline';

/** Imperative commands a device answers on responses/{cmd}; they sit on top of desired state. */
export const COMMANDS = ['sync', 'rollback', 'report', 'telemetry'] as const;
export type CommandName = (typeof COMMANDS)[number];

const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && DEVICE_ID.test(value);
}

export function parseDeviceId(value: unknown, key = 'device'): string {
  if (!isDeviceId(value)) {
    throw new OutpostError(
      'DEVICE_ID_INVALID',
      `${key} ${JSON.stringify(value)} is not a device id (1-64 of letters, digits, . _ -, starting with a letter or digit)`,
      { key, value },
    );
  }
  return value;
}

export const topics = {
  device: (id: string): string => `${TOPIC_ROOT}/${id}`,
  desired: (id: string): string => `${TOPIC_ROOT}/${id}/desired`,
  reported: (id: string): string => `${TOPIC_ROOT}/${id}/reported`,
  status: (id: string): string => `${TOPIC_ROOT}/${id}/status`,
  telemetry: (id: string): string => `${TOPIC_ROOT}/${id}/telemetry`,
  command: (id: string, cmd: string): string => `${TOPIC_ROOT}/${id}/commands/${cmd}`,
  commands: (id: string): string => `${TOPIC_ROOT}/${id}/commands/#`,
  response: (id: string, cmd: string): string => `${TOPIC_ROOT}/${id}/responses/${cmd}`,
  /** Cloud-side subscriptions across the fleet. */
  allReported: `${TOPIC_ROOT}/+/reported`,
  allStatus: `${TOPIC_ROOT}/+/status`,
  allTelemetry: `${TOPIC_ROOT}/+/telemetry`,
  allResponses: `${TOPIC_ROOT}/+/responses/+`,
} as const;

export type TopicKind = 'desired' | 'reported' | 'status' | 'telemetry' | 'commands' | 'responses';

export interface DeviceTopic {
  deviceId: string;
  kind: TopicKind;
  /** The command name for commands/{cmd} and responses/{cmd}. */
  cmd?: string;
}

/**
 * Splits a concrete topic (no wildcards) into device id and kind; null for anything outside the
 * tree. Used by the broker ACL and by the cloud's report ingestion, so it is deliberately strict.
 */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const prefix = `${TOPIC_ROOT}/`;
  if (!topic.startsWith(prefix)) return null;
  const rest = topic.slice(prefix.length).split('/');
  const [deviceId, kind, cmd] = rest;
  if (!isDeviceId(deviceId)) return null;
  if (rest.length === 2 && (kind === 'desired' || kind === 'reported' || kind === 'status' || kind === 'telemetry')) {
    return { deviceId, kind };
  }
  if (rest.length === 3 && (kind === 'commands' || kind === 'responses') && /^[A-Za-z0-9._-]{1,64}$/.test(cmd)) {
    return { deviceId, kind, cmd };
  }
  return null;
}
