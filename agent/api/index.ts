/**
 * The agent's local API, as the daemon composes it:
 *
 *   const hub = new EventHub();                                  // store + runtime publish here
 *   runtimeEventSource(runtime).subscribe((e) => hub.publish(e));
 *   const api = createApiServer({ runtime: servingRuntime(runtime), log, events: hub,
 *                                 limits: config.api, status: () => ({ deviceId }) });
 *   await api.listen(config.socket, config.socketMode);           // throws API_SOCKET_IN_USE / _FAILED
 *   ...
 *   await api.close();                                           // lets requests finish (5 s grace)
 */
export { createApiServer, type ApiServer } from './server.js';
export { EventHub } from './events.js';
export { servingRuntime, runtimeEventSource } from './runtime-adapter.js';
export {
  DEFAULT_LIMITS,
  type AgentEvent,
  type AgentEventType,
  type ApiLimits,
  type ApiServerOptions,
  type EventSource,
  type ModelEntry,
  type ModelDescription,
  type ServingRuntime,
} from './types.js';
