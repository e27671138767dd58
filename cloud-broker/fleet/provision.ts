import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { TrustedKey } from '../../protocol/signing.js';

/**
 * The part of agent.json that the cloud knows (protocol/agent-config.ts owns the full shape and
 * its defaults; the agent fills in the rest). Contains the device's token: written 0600.
 */
export interface AgentConfigDraft {
  deviceId: string;
  cloud: { http: string; mqtt: string };
  credentials: { username: string; token: string };
  trustedKeys: TrustedKey[];
  tags: string[];
}

/** Writes `<dir>/agent.json` atomically with mode 0600 (temp, fsync, rename, fsync dir). */
export async function writeAgentConfig(dir: string, config: AgentConfigDraft): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'agent.json');
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fs.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(config, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
  const d = await fs.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return file;
}
