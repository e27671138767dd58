import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULT_AGENT_CONFIG_PATH, parseAgentConfig, type AgentConfig } from '../../protocol/agent-config.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { applyEnvOverrides, CONFIG_PATH_ENV, setPath } from './env.js';

export interface LoadAgentConfigOptions {
  /** The config file; default $OUTPOST_CONFIG, then /etc/outpost/agent.json. */
  path?: string;
  /** Environment for OUTPOST_* overrides (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Dotted key -> value, applied last (command-line flags); validated like the file. */
  overrides?: Record<string, unknown>;
}

export interface LoadedAgentConfig {
  /** The validated, deep-frozen config. */
  config: AgentConfig;
  /** The file that was read (absolute). */
  path: string;
  /** Keys whose value did not come from the file: key -> "OUTPOST_X" or "command line". */
  overridden: Record<string, string>;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Reads the agent config: the JSON file, then OUTPOST_* variables, then `overrides`, validated
 * once as a whole (every problem is reported together, each with where it came from).
 * Throws CONFIG_NOT_FOUND, CONFIG_NOT_JSON, CONFIG_INVALID, CONFIG_UNKNOWN_KEY or IO_ERROR.
 */
export async function loadAgentConfig(opts: LoadAgentConfigOptions = {}): Promise<LoadedAgentConfig> {
  const env = opts.env ?? process.env;
  const path = resolve(opts.path ?? (env[CONFIG_PATH_ENV] || DEFAULT_AGENT_CONFIG_PATH));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new OutpostError(
        'CONFIG_NOT_FOUND',
        `agent config ${path} does not exist: write it (outpost device provision prints one) or pass --config FILE`,
        { path },
      );
    }
    const why =
      code === 'EACCES'
        ? ' (permission denied: the file is meant to be root:outpost 0640; run as the outpost user or root)'
        : '';
    throw new OutpostError('IO_ERROR', `cannot read agent config ${path}: ${(err as Error).message}${why}`, {
      path,
      errno: code,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new OutpostError('CONFIG_NOT_JSON', `agent config ${path} is not valid JSON: ${(err as Error).message}`, {
      path,
    });
  }
  const fromEnv =
    raw !== null && typeof raw === 'object' && !Array.isArray(raw)
      ? applyEnvOverrides(raw as Record<string, unknown>, env)
      : new Map<string, string>();
  const overridden: Record<string, string> = Object.fromEntries(fromEnv);
  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (value === undefined || raw === null || typeof raw !== 'object' || Array.isArray(raw)) continue;
    setPath(raw as Record<string, unknown>, key, value);
    overridden[key] = 'command line';
  }
  // An issue's key may be deeper than the overridden key (tags[2] under tags): match by prefix.
  const sourceOf = (key: string): string => {
    for (const [k, src] of Object.entries(overridden)) {
      if (key === k || key.startsWith(k + '.') || key.startsWith(k + '['))
        return src === 'command line' ? src : `environment variable ${src}`;
    }
    return path;
  };
  const config = parseAgentConfig(raw, sourceOf);
  return { config: deepFreeze(config), path, overridden };
}
