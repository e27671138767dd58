import { topics, parseDeviceTopic } from '../../protocol/topics.js';
import type { SessionTopics } from '../sync/mqtt-session.js';

/** The MQTT session's view of the topic tree for one device. */
export function sessionTopics(deviceId: string): SessionTopics {
  return {
    desired: topics.desired(deviceId),
    commands: topics.commands(deviceId),
    reported: topics.reported(deviceId),
    status: topics.status(deviceId),
    telemetry: topics.telemetry(deviceId),
    response: (cmd) => topics.response(deviceId, cmd),
    commandOf: (topic) => {
      const t = parseDeviceTopic(topic);
      return t && t.deviceId === deviceId && t.kind === 'commands' ? (t.cmd ?? null) : null;
    },
  };
}
