export { loadAgentConfig, type LoadAgentConfigOptions, type LoadedAgentConfig } from './load.js';
export { ENV_MAPPING, CONFIG_PATH_ENV, applyEnvOverrides } from './env.js';
export { diffReloadable, applyReloadable, RELOADABLE_KEYS, type ReloadDiff, type ReloadableKey } from './reload.js';
