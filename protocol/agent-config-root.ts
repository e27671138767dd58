import { OutpostError } from './errors/index.js';
import type { AgentConfig, ConfigIssue, ConfigSource } from './agent-config.js';
import { rootIssueMessage } from './agent-config.js';
import { parseRoot, type RootMetadata } from './trust-root.js';

/**
 * The full check of a config's `trustedRoot` that parseAgentConfig leaves to its shape
 * (trust-root-shape.ts says why): trust-root.ts parseRoot, with @tufjs/models. A bad root fails
 * as parseAgentConfig fails, CONFIG_INVALID (exit 3) naming the key and the file. Returns the
 * parsed root, or null for a config provisioned before roots existed (its trustedKeys act as
 * root v1). The agent daemon runs it before it trusts anything with the root; `outpost agent
 * check-config` and `outpost device provision` run it right after parseAgentConfig.
 */
export function checkAgentConfigRoot(config: AgentConfig, source: ConfigSource): RootMetadata | null {
  if (!config.trustedRoot) return null;
  try {
    return parseRoot(config.trustedRoot);
  } catch (err) {
    const where = typeof source === 'function' ? source('trustedRoot') : source;
    const problem = (err as Error).message.replace(/^root metadata: /, '');
    const issue: ConfigIssue = {
      code: 'CONFIG_INVALID',
      key: 'trustedRoot',
      message: rootIssueMessage(problem),
      source: where,
    };
    throw new OutpostError('CONFIG_INVALID', `trustedRoot ${issue.message} (in ${where})`, { issues: [issue] });
  }
}
