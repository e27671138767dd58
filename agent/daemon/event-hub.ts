import type { AgentEvent, EventSource } from '../api/types.js';

/** Fans model events (installed, activated, failed, rolled back) out to /v1/events and metrics. */
export class EventHub implements EventSource {
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  subscribe(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: AgentEvent): void {
    const e = { ...event, at: event.at ?? new Date().toISOString() };
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure must not stop the others or the reconciler that emitted.
      }
    }
  }
}
