import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CliContext } from '../../protocol/cli.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { CloudClient } from '../client/cloud-client.js';
import { stringFlag, type FlagOptions, type FlagValues } from './args.js';
import { readIfExists } from './fs-util.js';

/** Flags of every verb that talks to the cloud. */
export const CLOUD_FLAGS: FlagOptions = {
  cloud: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
};

export const CLOUD_FLAGS_HELP = `  --cloud URL        the cloud's HTTP API (default: $OUTPOST_CLOUD_URL, else the local cloud)
  --token TOKEN      access token (default: $OUTPOST_TOKEN, else the local cloud's admin token)
  --data-dir DIR     the local cloud's data dir (default: $OUTPOST_DATA_DIR or ~/.outpost/cloud)
  --json             print one JSON line instead of text`;

export interface CloudTarget {
  url: string;
  token: string;
  /** How the URL was found, for messages. */
  source: 'flag' | 'env' | 'local';
}

export function dataDirOf(values: FlagValues, ctx: CliContext): string {
  return (
    stringFlag(values, 'data-dir') ?? ctx.env.OUTPOST_DATA_DIR ?? join(ctx.env.HOME ?? homedir(), '.outpost', 'cloud')
  );
}

/**
 * Finds the cloud: --cloud, then $OUTPOST_CLOUD_URL, then the local embedded cloud's
 * `<dataDir>/cloud.json`. The token: --token, then $OUTPOST_TOKEN, then (only for the local
 * cloud, whose admin token is a file we may read) `<dataDir>/admin.token`.
 */
export async function resolveCloud(values: FlagValues, ctx: CliContext): Promise<CloudTarget> {
  const dataDir = dataDirOf(values, ctx);
  let url = stringFlag(values, 'cloud');
  let source: CloudTarget['source'] = 'flag';
  if (url === undefined && ctx.env.OUTPOST_CLOUD_URL) {
    url = ctx.env.OUTPOST_CLOUD_URL;
    source = 'env';
  }
  let localUrl: string | undefined;
  const localText = await readIfExists(join(dataDir, 'cloud.json'));
  if (localText !== undefined) {
    try {
      const http = (JSON.parse(localText) as { http?: unknown }).http;
      if (typeof http === 'string') localUrl = http;
    } catch {
      // A torn or foreign cloud.json only matters when we need it; then CLI_NO_CLOUD says why.
    }
  }
  if (url === undefined) {
    if (localUrl === undefined) {
      throw new OutpostError(
        'CLI_NO_CLOUD',
        `no cloud given and no local cloud in ${dataDir} (no readable cloud.json); pass --cloud URL, set OUTPOST_CLOUD_URL, or run \`outpost cloud start\``,
        { dataDir },
      );
    }
    url = localUrl;
    source = 'local';
  }
  let token = stringFlag(values, 'token') ?? (ctx.env.OUTPOST_TOKEN || undefined);
  if (token === undefined && url === localUrl) {
    token = (await readIfExists(join(dataDir, 'admin.token')))?.trim() || undefined;
  }
  if (token === undefined) {
    throw new OutpostError(
      'AUTH_TOKEN_MISSING',
      `no token for the cloud at ${url}; pass --token or set OUTPOST_TOKEN`,
      { url },
    );
  }
  return { url, token, source };
}

export async function connect(values: FlagValues, ctx: CliContext): Promise<CloudClient> {
  const t = await resolveCloud(values, ctx);
  return new CloudClient({ url: t.url, token: t.token });
}
