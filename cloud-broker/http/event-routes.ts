import { OutpostError } from '../../protocol/errors/index.js';
import type { FleetChange } from '../fleet/changes.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Route } from './router.js';

/** Live streams the cloud serves at once; each costs a socket and a watcher. */
export const MAX_EVENT_STREAMS = 64;
/** Changes are gathered this long and sent as one event: a fleet reports in bursts. */
export const BATCH_MS = 500;
/** A comment line this often keeps proxies and the server's idle timeout from closing the stream. */
export const PING_MS = 15_000;
/** A batch names at most this many devices; beyond it says `more: true` and the page reloads its view. */
export const MAX_IDS = 200;

/**
 * `GET /v1/events` (admin): a Server-Sent Events stream (text/event-stream) of what changed in the
 * fleet, for the web page's live updates. It carries notifications, not state: each `change`
 * event names the devices and the kinds of change of the last BATCH_MS, and the page re-reads the
 * view it shows. A client that does not read (a full socket buffer) skips batches until it drains,
 * so a slow tab never makes the cloud buffer without bound. Auth is the usual Authorization header:
 * the page reads the stream with fetch(), since EventSource cannot send headers and a token in the
 * URL would end up in logs and history.
 */
export function eventRoutes(getFleet: () => Fleet | null): Route[] {
  let open = 0;
  return [
    {
      method: 'GET',
      path: '/v1/events',
      access: 'admin',
      handler: async ({ res }) => {
        const fleet = getFleet();
        if (!fleet)
          throw new OutpostError(
            'BROKER_UNREACHABLE',
            'the fleet is still starting (broker not connected); retry in a moment',
          );
        if (open >= MAX_EVENT_STREAMS)
          throw new OutpostError(
            'HTTP_TOO_MANY_STREAMS',
            `the cloud serves at most ${MAX_EVENT_STREAMS} event streams; close another tab of the page or retry later`,
            { limit: MAX_EVENT_STREAMS },
          );
        open++;
        res.writeHead(200, {
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': 'no-store',
          'X-Accel-Buffering': 'no',
        });
        res.write(`retry: 3000\nevent: hello\ndata: ${JSON.stringify({ at: new Date().toISOString() })}\n\n`);
        const devices = new Set<string>();
        const kinds = new Set<FleetChange['kind']>();
        let more = false;
        let timer: NodeJS.Timeout | null = null;
        let blocked = false;
        const flush = (): void => {
          timer = null;
          if (blocked || (devices.size === 0 && !more)) return;
          const data = { devices: [...devices], kinds: [...kinds], more };
          devices.clear();
          kinds.clear();
          more = false;
          blocked = !res.write(`event: change\ndata: ${JSON.stringify(data)}\n\n`);
        };
        const stop = fleet.changes.watch((c) => {
          if (devices.size < MAX_IDS) devices.add(c.device);
          else if (!devices.has(c.device)) more = true;
          kinds.add(c.kind);
          timer ??= setTimeout(flush, BATCH_MS);
        });
        const onDrain = (): void => {
          blocked = false;
          timer ??= setTimeout(flush, BATCH_MS);
        };
        res.on('drain', onDrain);
        const ping = setInterval(() => {
          if (!blocked) blocked = !res.write(': ping\n\n');
        }, PING_MS);
        await new Promise<void>((resolve) => {
          const done = (): void => {
            stop();
            clearInterval(ping);
            if (timer) clearTimeout(timer);
            res.off('drain', onDrain);
            open--;
            resolve();
          };
          // 'close' on the response fires when the client goes away or the server shuts down.
          res.once('close', done);
        });
      },
    },
  ];
}
