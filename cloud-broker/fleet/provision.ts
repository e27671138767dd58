import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TrustedKey } from '../../protocol/signing.js';
import { writeFileAtomic } from '../../agent/fs/atomic-file.js';

/**
 * The part of agent.json that the cloud knows (protocol/agent-config.ts owns the full shape and
 * its defaults; the agent fills in the rest). Contains the device's token: written 0600.
 */
export interface AgentConfigDraft {
  deviceId: string;
  /** `ca`: PEM the device trusts for the broker's TLS certificate (private CA); omitted otherwise. */
  cloud: { http: string; mqtt: string; ca?: string };
  credentials: { username: string; token: string };
  trustedKeys: TrustedKey[];
  /** TUF root metadata (docs/security.md, "Keys"); absent before `outpost keys init`. */
  trustedRoot?: Record<string, unknown>;
  tags: string[];
}

/** Writes `<dir>/agent.json` atomically with mode exactly 0600. */
export async function writeAgentConfig(dir: string, config: AgentConfigDraft): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'agent.json');
  await writeFileAtomic(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  return file;
}
