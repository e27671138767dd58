import { AGENT_CONFIG_DEFAULTS, knownConfigKeys } from '../../protocol/agent-config.js';

/**
 * `OUTPOST_*` environment overrides of the agent config. Each config key maps to one variable:
 * the dotted key in SCREAMING_SNAKE case (`download.parallel` -> `OUTPOST_DOWNLOAD_PARALLEL`),
 * except the names below, which read better or must not collide with the operator CLI's own
 * variables (the CLI's `OUTPOST_TOKEN` is an operator token, never a device's).
 * `trustedKeys` and `trustedRoot` have no variable: keys belong in the file that provisioning wrote.
 */
const RENAMED: Record<string, string | null> = {
  deviceId: 'OUTPOST_DEVICE_ID',
  'cloud.http': 'OUTPOST_CLOUD_URL',
  'cloud.mqtt': 'OUTPOST_MQTT_URL',
  'credentials.username': 'OUTPOST_DEVICE_USERNAME',
  'credentials.token': 'OUTPOST_DEVICE_TOKEN',
  trustedKeys: null,
  trustedRoot: null,
};

/** The variable that names the config file itself (like --config). */
export const CONFIG_PATH_ENV = 'OUTPOST_CONFIG';

function snake(key: string): string {
  return (
    'OUTPOST_' +
    key
      .replace(/\./g, '_')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .toUpperCase()
  );
}

/** Every config key that has a variable, with the variable's name, in schema order. */
export const ENV_MAPPING: ReadonlyArray<{ key: string; env: string }> = knownConfigKeys()
  .map((key) => ({ key, env: key in RENAMED ? RENAMED[key] : snake(key) }))
  .filter((m): m is { key: string; env: string } => m.env !== null);

function defaultOf(key: string): unknown {
  return key
    .split('.')
    .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], AGENT_CONFIG_DEFAULTS);
}

/**
 * Turns a variable's text into the JSON type its key expects. Anything that does not convert is
 * kept as the string, so that parseAgentConfig reports it with the variable's name and value.
 */
function convert(key: string, raw: string): unknown {
  const d = defaultOf(key);
  if (key === 'socketMode') return raw;
  if (Array.isArray(d))
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  if (typeof d === 'number') return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  if (typeof d === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    return raw;
  }
  return raw;
}

export function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let o = target;
  for (const p of parts.slice(0, -1)) {
    const next = o[p];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/**
 * Applies the environment to a raw (unvalidated) config object in place. Returns the variable
 * each overridden key came from. An empty variable counts as unset (systemd's `Environment=X=`).
 */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const applied = new Map<string, string>();
  for (const { key, env: name } of ENV_MAPPING) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    setPath(raw, key, convert(key, v));
    applied.set(key, name);
  }
  return applied;
}
