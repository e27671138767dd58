import { printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { createLogger } from '../../../protocol/log.js';
import { DEFAULT_HOST, DEFAULT_HTTP_PORT, DEFAULT_MQTT_PORT, defaultDataDir, startCloud } from '../../cloud.js';
import { defineCommand, stringFlag } from '../args.js';

const USAGE = `outpost cloud start [--data-dir DIR] [--host H] [--http-port N] [--mqtt-port N] [--json]

Runs the cloud in this process until SIGINT or SIGTERM: the catalog (SQLite), the blob store, the
HTTP API, the embedded MQTT broker (aedes, with per-device credentials and ACL) and the fleet's
signed desired-state publisher. At first start it creates <data dir>/admin.token (mode 0600) and
the signing key <data dir>/signing/desired.key. While it runs, <data dir>/cloud.json tells the
other outpost verbs on this machine where it listens.

  --data-dir DIR   where the database, blobs, keys and tokens live (default: $OUTPOST_DATA_DIR, else ~/.outpost/cloud)
  --host H         address to listen on (default ${DEFAULT_HOST}; 0.0.0.0 to serve other machines)
  --http-port N    HTTP API port (default ${DEFAULT_HTTP_PORT}; 0 picks a free port)
  --mqtt-port N    MQTT port (default ${DEFAULT_MQTT_PORT}, or a free port when --http-port is 0; 0 picks a free port)
  --json           print one line {"http", "mqtt", "adminTokenFile"} once listening
Exit codes: 0 after a clean stop; 7 when a port cannot be bound (CLOUD_LISTEN_FAILED).
Logs (pino JSON) go to stderr.`;

function parsePort(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n > 65535) throw new OutpostError('USAGE', `--${flag} "${value}" is not a port (0 to 65535; 0 picks a free one)`, { flag, value });
  return n;
}

/** `outpost cloud start`: runs until ctx.signal aborts, then closes everything and returns 0. */
export const cloudStart: Command = defineCommand({
  usage: USAGE,
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string' },
    'http-port': { type: 'string' },
    'mqtt-port': { type: 'string' },
  },
  run: async ({ values, json }, ctx) => {
    // An absent --mqtt-port stays undefined: startCloud then picks a free one when --http-port is
    // 0, so "--http-port 0" alone never collides with another cloud on 1883.
    const httpPort = parsePort(stringFlag(values, 'http-port'), 'http-port') ?? DEFAULT_HTTP_PORT;
    const mqttPort = parsePort(stringFlag(values, 'mqtt-port'), 'mqtt-port');
    const host = stringFlag(values, 'host') ?? DEFAULT_HOST;
    const dataDir = stringFlag(values, 'data-dir') ?? defaultDataDir(ctx.env);
    // stdout is for the one result line; logs go to stderr.
    const log = createLogger({ name: 'outpost-cloud', destination: ctx.stderr });
    if (ctx.signal.aborted) return 0;
    const cloud = await startCloud({ dataDir, host, httpPort, mqttPort, log });
    printResult(ctx, json, { http: cloud.httpUrl, mqtt: cloud.mqttUrl, adminTokenFile: cloud.adminTokenFile },
      `Outpost cloud listening\n  http:        ${cloud.httpUrl}\n  mqtt:        ${cloud.mqttUrl ?? '(none)'}\n  admin token: ${cloud.adminTokenFile}\n  data dir:    ${cloud.dataDir}\nStop with Ctrl-C.`);
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await cloud.close();
    return 0;
  },
});
