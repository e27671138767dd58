import { isIP, createConnection } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';

/**
 * Opens the session's mqtt.js client (mqtt-session.ts is its only user).
 *
 * mqtt.connect() requires every transport it has on its first call, whatever the URL: the `ws`
 * package for WebSockets and `socks` + `ip-address` for SOCKS proxies, about 30 modules and
 * several MiB of the agent's idle memory (docs/systemd.md#footprint). A device almost always
 * speaks mqtt:// or mqtts://, so for those this builds the TCP or TLS stream itself, as mqtt.js's
 * own tcp/tls builders do, and hands it to MqttClient. ws://, wss:// and a SOCKS proxy
 * (MQTTJS_SOCKS_PROXY) keep going through mqtt.connect, which then loads what they need.
 */
export function openMqttClient(url: string, options: IClientOptions, env: NodeJS.ProcessEnv = process.env): MqttClient {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, '');
  const secure = protocol === 'mqtts' || protocol === 'tls';
  if ((!secure && protocol !== 'mqtt' && protocol !== 'tcp') || env.MQTTJS_SOCKS_PROXY) {
    return mqtt.connect(url, options);
  }
  // WHATWG URLs keep IPv6 hosts in brackets; sockets want them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = u.port ? Number(u.port) : secure ? 8883 : 1883;
  const opts: IClientOptions = { ...options, protocol: secure ? 'mqtts' : 'mqtt', host, hostname: host, port };
  const client = new MqttClient(
    (c) => (secure ? tlsStream(c, host, port, opts) : createConnection({ host, port })),
    opts,
  );
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
