import type { AgentConfig } from '../../protocol/agent-config.js';

/**
 * What SIGHUP may change without a restart. Everything else (identity, credentials, trusted
 * keys, paths, the socket, MQTT session settings, download policy) is bound into objects built
 * at start (the MQTT session, the socket server, the store), so changing it needs a restart.
 */
export const RELOADABLE_KEYS = [
  'log.level',
  'telemetry.intervalSeconds',
  'telemetry.enabled',
  'api.maxBodyBytes',
  'api.maxConcurrentPerModel',
  'api.maxBytesInFlight',
  'api.requestTimeoutMs',
  'api.maxConnections',
] as const;
export type ReloadableKey = (typeof RELOADABLE_KEYS)[number];

export interface ReloadDiff {
  /** Changed keys the daemon applies live. */
  reloadable: ReloadableKey[];
  /** Changed keys that only take effect after a restart (the daemon logs them and keeps the old value). */
  restartRequired: string[];
}

function flatten(o: unknown, prefix: string, out: Map<string, string>): Map<string, string> {
  if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(o));
  }
  return out;
}

/** Compares two validated configs key by key (lists compare as a whole). */
export function diffReloadable(oldConfig: AgentConfig, newConfig: AgentConfig): ReloadDiff {
  const a = flatten(oldConfig, '', new Map());
  const b = flatten(newConfig, '', new Map());
  const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  const live = new Set<string>(RELOADABLE_KEYS);
  return {
    reloadable: changed.filter((k): k is ReloadableKey => live.has(k)),
    restartRequired: changed.filter((k) => !live.has(k)),
  };
}

/**
 * The config to run with after a reload: the old one with only the reloadable keys taken from
 * the new one, so a half-applicable edit never leaves the daemon in a mixed state it did not plan.
 */
export function applyReloadable(oldConfig: AgentConfig, newConfig: AgentConfig): AgentConfig {
  return {
    ...oldConfig,
    log: { ...oldConfig.log, level: newConfig.log.level },
    telemetry: { ...newConfig.telemetry },
    api: { ...newConfig.api },
  };
}
