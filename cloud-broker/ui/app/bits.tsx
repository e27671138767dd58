import type { ComponentChildren } from 'preact';
import { ago } from './format';
import type { RolloutModel } from './types';

/** Shared small pieces of the views. */

export function Status({ status, at }: { status: 'online' | 'offline' | null; at?: string | null }) {
  const s = status ?? 'offline';
  return (
    <span class={`status status-${s}`}>
      <span class="dot" aria-hidden="true" />
      {s}
      {at !== undefined ? <span class="muted"> · {ago(at)}</span> : null}
    </span>
  );
}

/** "v2 → v3 downloading 40%", "v3 active", "v2 failed (FETCH_HASH_MISMATCH)". */
export function ModelLine({ m }: { m: RolloutModel }) {
  const active = m.active === null ? 'none' : `v${m.active}`;
  const moving = m.desired !== null && m.desired !== m.active;
  const pctDone = m.progress && m.progress.total > 0 ? Math.floor((m.progress.bytes / m.progress.total) * 100) : null;
  return (
    <div class="model-line">
      <span class="model-id">{m.id}</span>{' '}
      <span class="version">
        {active}
        {moving ? ` → v${m.desired}` : ''}
        {m.desired === null ? ' (not desired)' : ''}
      </span>{' '}
      <span class={`state state-${m.state}`}>
        {m.state}
        {pctDone !== null ? ` ${pctDone}%` : ''}
      </span>
      {m.error ? (
        <code class="code" title={m.error.message}>
          {m.error.code}
        </code>
      ) : null}
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as { code?: string; message?: string };
  return (
    <p class="error" role="alert">
      {e.code ? <code class="code">{e.code}</code> : null} {e.message ?? String(error)}
    </p>
  );
}

export function Pager({
  offset,
  limit,
  total,
  onPage,
}: {
  offset: number;
  limit: number;
  total: number;
  onPage: (offset: number) => void;
}) {
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(total, offset + limit);
  return (
    <nav class="pager" aria-label="Pages">
      <span aria-live="polite">
        {first}–{last} of {total} · page {page} of {pages}
      </span>
      <button type="button" disabled={page <= 1} onClick={() => onPage(Math.max(0, offset - limit))}>
        Previous
      </button>
      <button type="button" disabled={page >= pages} onClick={() => onPage(offset + limit)}>
        Next
      </button>
    </nav>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

/** A labelled progress bar; `value` of `max`. */
export function Bar({ value, max, label }: { value: number; max: number; label: string }) {
  return (
    <span class="bar-wrap">
      <progress value={value} max={Math.max(1, max)} aria-label={label} />
      <span class="bar-text">
        {value}/{max}
      </span>
    </span>
  );
}

/** A table cell with a failure's code and message, or "none". */
export function ErrorCell({ error }: { error: { code: string; message: string } | null | undefined }) {
  return (
    <td data-label="Error">
      {error ? (
        <>
          <code class="code">{error.code}</code> {error.message}
        </>
      ) : (
        <span class="muted">none</span>
      )}
    </td>
  );
}
