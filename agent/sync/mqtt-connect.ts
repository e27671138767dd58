import { isIP, createConnection } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { IClientOptions, MqttClient } from 'mqtt';
// The client class alone, not mqtt's index (which requires every transport): see below.
import clientModule from 'mqtt/lib/client';

// module.exports under node (its `default` is the class); the class itself where the importer
// applies __esModule interop (vitest).
const Client: typeof MqttClient =
  typeof clientModule === 'function'
    ? (clientModule as typeof MqttClient)
    : (clientModule as unknown as { default: typeof MqttClient }).default;

/**
 * Opens the session's mqtt.js client (mqtt-session.ts is its only user).
 *
 * mqtt.connect() requires every transport it has on its first call, whatever the URL: the `ws`
 * package for WebSockets and `socks` + `ip-address` for SOCKS proxies, about 30 modules and
 * several MiB of the agent's idle memory (docs/systemd.md#footprint). A device almost always
 * speaks mqtt:// or mqtts://, so for those this builds the TCP or TLS stream itself, as mqtt.js's
 * own tcp/tls builders do, and hands it to MqttClient. ws://, wss:// and a SOCKS proxy
 * (MQTTJS_SOCKS_PROXY) keep going through mqtt.connect: loadTransports imports mqtt's index for
 * them first (in the device bundle, a chunk of its own that other URLs never load).
 */
let connect: ((url: string, options: IClientOptions) => MqttClient) | undefined;

function needsMqttConnect(url: string, env: NodeJS.ProcessEnv): boolean {
  const protocol = new URL(url).protocol.replace(/:$/, '');
  return !['mqtt', 'tcp', 'mqtts', 'tls'].includes(protocol) || !!env.MQTTJS_SOCKS_PROXY;
}

/** Imports mqtt.connect when `url` needs one of its other transports; call before openMqttClient. */
export async function loadTransports(url: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (needsMqttConnect(url, env)) connect ??= (await import('mqtt')).default.connect;
}

export function openMqttClient(url: string, options: IClientOptions, env: NodeJS.ProcessEnv = process.env): MqttClient {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, '');
  const secure = protocol === 'mqtts' || protocol === 'tls';
  if (needsMqttConnect(url, env)) {
    if (!connect) throw new Error(`mqtt-connect: call loadTransports(${JSON.stringify(url)}) first`);
    return connect(url, options);
  }
  // WHATWG URLs keep IPv6 hosts in brackets; sockets want them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = u.port ? Number(u.port) : secure ? 8883 : 1883;
  const opts: IClientOptions = { ...options, protocol: secure ? 'mqtts' : 'mqtt', host, hostname: host, port };
  const client = new Client((c) => (secure ? tlsStream(c, host, port, opts) : createConnection({ host, port })), opts);
  // As mqtt.connect does: the session listens for errors; a client without a listener would throw.
  client.on('error', () => {});
  return client;
}

/** mqtt.js's tls builder without the proxy: verify the certificate, name the server for SNI. */
function tlsStream(client: MqttClient, host: string, port: number, opts: IClientOptions): TLSSocket {
  const rejectUnauthorized = opts.rejectUnauthorized !== false;
  const socket = tlsConnect({
    host,
    port,
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    servername: opts.servername ?? (isIP(host) === 0 ? host : undefined),
    rejectUnauthorized,
  });
  const onError = (err: Error) => {
    if (rejectUnauthorized) client.emit('error', err);
    socket.end();
  };
  socket.on('secureConnect', () => {
    if (rejectUnauthorized && !socket.authorized) socket.emit('error', new Error('TLS not authorized'));
    else socket.removeListener('error', onError);
  });
  socket.on('error', onError);
  return socket;
}
