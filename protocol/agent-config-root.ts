import { OutpostError } from './errors/index.js';
import type { AgentConfig, ConfigIssue, ConfigSource } from './agent-config.js';
import { ed25519Problem, rootIssueMessage } from './agent-config.js';
import { parseRoot, type RootMetadata } from './trust-root.js';

/**
 * The checks of a config's root of trust that parseAgentConfig leaves to their shape
 * (trust-root-shape.ts says why): each of `trustedKeys` read as an Ed25519 public key, and
 * `trustedRoot` through trust-root.ts parseRoot, with @tufjs/models. A failure is what
 * parseAgentConfig throws, CONFIG_INVALID (exit 3) naming the key and the file. Returns the
 * parsed root, or null for a config provisioned before roots existed (its trustedKeys act as
 * root v1). The agent daemon runs it before it trusts anything with either; `outpost agent
 * check-config` and `outpost device provision` run it right after parseAgentConfig.
 */
export function checkAgentConfigRoot(config: AgentConfig, source: ConfigSource): RootMetadata | null {
  const where = (key: string) => (typeof source === 'function' ? source(key) : source);
  const fail = (key: string, message: string): never => {
    const issue: ConfigIssue = { code: 'CONFIG_INVALID', key, message, source: where(key) };
    throw new OutpostError('CONFIG_INVALID', `${key} ${message} (in ${issue.source})`, { issues: [issue] });
  };
  config.trustedKeys.forEach((k, i) => {
    const problem = ed25519Problem(k.publicKey);
    if (problem) fail(`trustedKeys[${i}].publicKey`, problem);
  });
  if (!config.trustedRoot) return null;
  try {
    return parseRoot(config.trustedRoot);
  } catch (err) {
    return fail('trustedRoot', rootIssueMessage((err as Error).message.replace(/^root metadata: /, '')));
  }
}
