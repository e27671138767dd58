import type { ServerResponse } from 'node:http';
import type { Logger } from '../../protocol/log.js';
import type { AgentEvent, EventSource } from './types.js';

/**
 * Model-change events. `EventHub` is what the daemon publishes to (the store and the runtime call
 * `publish`); `SseClients` fans them out to /v1/events connections.
 *
 * Invariants: a slow or vanished client never blocks the hub or grows the agent's memory without
 * bound (a client with more than `maxBuffered` unread bytes is dropped); the last `replay` events
 * are kept so a client that reconnects with Last-Event-ID misses nothing that recent.
 */
export class EventHub implements EventSource {
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  subscribe(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(e: AgentEvent): void {
    const event = { ...e, at: e.at ?? new Date().toISOString() };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // A listener's bug must not stop the others from hearing the event.
      }
    }
  }
}

interface Client {
  res: ServerResponse;
  id: number;
}

export class SseClients {
  private readonly clients = new Set<Client>();
  private readonly recent: { id: number; text: string }[] = [];
  private nextId = 1;
  private clientSeq = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    private readonly log: Logger,
    private readonly opts: { heartbeatMs: number; maxBuffered: number; replay?: number },
    onEvent?: (e: AgentEvent) => void,
    source?: EventSource,
  ) {
    this.unsubscribe = source?.subscribe((e) => {
      onEvent?.(e);
      this.broadcast(e);
    });
    // Comments keep proxies and idle timeouts from closing the stream, and reveal dead peers.
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Takes over the response for the stream; `lastEventId` replays what the client missed. */
  attach(res: ServerResponse, lastEventId: string | undefined): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    // The stream is long-lived by design: no idle timeout on its socket.
    res.socket?.setTimeout(0);
    const client: Client = { res, id: ++this.clientSeq };
    this.clients.add(client);
    res.write(`retry: 2000\n: connected\n\n`);
    const after = lastEventId !== undefined && /^\d+$/.test(lastEventId) ? Number(lastEventId) : undefined;
    if (after !== undefined) for (const r of this.recent) if (r.id > after) res.write(r.text);
    const drop = () => this.clients.delete(client);
    res.on('close', drop);
    res.on('error', drop);
  }

  broadcast(e: AgentEvent): void {
    const id = this.nextId++;
    const text = `id: ${id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
    this.recent.push({ id, text });
    if (this.recent.length > (this.opts.replay ?? 100)) this.recent.shift();
    this.write(text);
  }

  private write(text: string): void {
    for (const c of this.clients) {
      if (c.res.destroyed || c.res.writableLength > this.opts.maxBuffered) {
        this.log.info(
          { client: c.id, buffered: c.res.writableLength },
          'dropping an event-stream client that does not read',
        );
        this.clients.delete(c);
        c.res.destroy();
        continue;
      }
      c.res.write(text);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe?.();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}
