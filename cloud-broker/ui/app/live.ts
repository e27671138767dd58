import { useEffect, useState } from 'preact/hooks';
import { authHeaders } from './api';
import { parseEvent } from './sse';

/**
 * Live updates: the cloud's Server-Sent Events stream GET /v1/events, read with fetch() because
 * EventSource cannot send an Authorization header (and the token must not go into the URL).
 * Events are notifications ("these devices changed"); each view re-reads what it shows. When the
 * stream cannot be opened or breaks, the page polls every POLL_MS and retries the stream with a
 * growing delay, so updates keep coming through proxies that buffer streams.
 */
export type LiveState = 'connecting' | 'live' | 'polling';

export interface Change {
  devices: string[];
  kinds: string[];
  more: boolean;
}

const POLL_MS = 5000;
const MAX_RETRY_MS = 30_000;

type Listener = (c: Change) => void;

export class Live {
  private readonly listeners = new Set<Listener>();
  private readonly states = new Set<(s: LiveState) => void>();
  private abort: AbortController | null = null;
  private poll: number | null = null;
  private retry: number | null = null;
  private delay = 1000;
  state: LiveState = 'connecting';

  start(): void {
    if (this.abort) return;
    void this.connect();
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
    if (this.poll !== null) clearInterval(this.poll);
    if (this.retry !== null) clearTimeout(this.retry);
    this.poll = this.retry = null;
  }

  on(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onState(fn: (s: LiveState) => void): () => void {
    this.states.add(fn);
    return () => this.states.delete(fn);
  }

  private setState(s: LiveState): void {
    this.state = s;
    for (const fn of this.states) fn(s);
  }

  private emit(c: Change): void {
    for (const fn of this.listeners) fn(c);
  }

  private async connect(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    try {
      const res = await fetch('/v1/events', {
        headers: { Accept: 'text/event-stream', ...authHeaders() },
        signal: abort.signal,
        cache: 'no-store',
      });
      if (!res.ok || !res.body) throw new Error(`events answered ${res.status}`);
      this.setState('live');
      this.delay = 1000;
      if (this.poll !== null) clearInterval(this.poll);
      this.poll = null;
      // Whatever changed while the stream was down is caught up by one reload.
      this.emit({ devices: [], kinds: [], more: true });
      await this.read(res.body);
    } catch {
      // Falls through to polling and a later retry; an abort (sign-out) ends here too.
    }
    if (abort.signal.aborted || this.abort !== abort) return;
    this.setState('polling');
    this.poll ??= window.setInterval(() => this.emit({ devices: [], kinds: [], more: true }), POLL_MS);
    this.retry = window.setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, this.delay);
    this.delay = Math.min(MAX_RETRY_MS, this.delay * 2);
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const ev = parseEvent(block);
        if (ev?.event === 'change') {
          try {
            this.emit(JSON.parse(ev.data) as Change);
          } catch {
            // A malformed event is skipped; the next one or the poll catches up.
          }
        }
      }
    }
  }
}

export const live = new Live();

/**
 * A counter that moves when something relevant changed, at most once a second: views put it in
 * their effects' dependencies to re-read. `relevant` filters (e.g. the devices on screen).
 */
export function useLiveTick(relevant: (c: Change) => boolean = () => true): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let last = 0;
    let pending: number | null = null;
    const bump = (): void => {
      pending = null;
      last = Date.now();
      setTick((t) => t + 1);
    };
    const off = live.on((c) => {
      if (!c.more && !relevant(c)) return;
      if (pending !== null) return;
      const wait = Math.max(0, 1000 - (Date.now() - last));
      pending = window.setTimeout(bump, wait);
    });
    return () => {
      off();
      if (pending !== null) clearTimeout(pending);
    };
  }, []);
  return tick;
}

export function useLiveState(): LiveState {
  const [s, setS] = useState(live.state);
  useEffect(() => live.onState(setS), []);
  return s;
}

/**
 * A counter that moves every `ms` while `on` holds: for views whose state moves on the cloud's
 * own timers too (a rollout's soak ending), where no device event announces the change.
 */
export function useEvery(ms: number, on: boolean): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!on) return;
    const t = window.setInterval(() => setTick((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms, on]);
  return tick;
}
