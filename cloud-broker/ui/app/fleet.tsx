import { useEffect, useRef, useState } from 'preact/hooks';
import { api, query } from './api';
import { ErrorNote, ModelLine, Pager, Status } from './bits';
import { useLiveTick } from './live';
import { go, href, type Route } from './route';
import { METRICS, Sparkline } from './spark';
import type { FleetPage, FleetRow } from './types';

const STATES = ['online', 'offline', 'converged', 'updating', 'failed'];
export const PAGE_SIZE = 50;

/** The fleet list: one row per device, filtered and paged by the cloud. */
export function FleetList({ route }: { route: Route }) {
  const p = route.params;
  const filters = {
    tag: p.get('tag') ?? '',
    state: p.get('state') ?? '',
    model: p.get('model') ?? '',
    q: p.get('q') ?? '',
  };
  const offset = Number(p.get('offset') ?? 0) || 0;
  const [data, setData] = useState<FleetPage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const visible = useRef(new Set<string>());
  const tick = useLiveTick(
    (c) => c.kinds.some((k) => k === 'device' || k === 'desired') || c.devices.some((d) => visible.current.has(d)),
  );
  const key = `${filters.tag}|${filters.state}|${filters.model}|${filters.q}|${offset}`;
  useEffect(() => {
    const ac = new AbortController();
    api<FleetPage>(`/v1/fleet/devices${query({ ...filters, offset, limit: PAGE_SIZE })}`, { signal: ac.signal })
      .then((d) => {
        visible.current = new Set(d.devices.map((x) => x.device));
        setData(d);
        setError(null);
      })
      .catch((e) => {
        if ((e as Error).name !== 'AbortError') setError(e);
      });
    return () => ac.abort();
  }, [key, tick]);

  const set = (k: string, v: string): void => go(['fleet'], { ...filters, [k]: v, offset: undefined });
  return (
    <>
      <div class="page-head">
        <h1>Fleet</h1>
        <a class="button" href={href(['deploy'])}>
          Deploy…
        </a>
      </div>
      <search aria-label="Filters">
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <label>
            Device
            <input
              type="search"
              value={filters.q}
              placeholder="part of an id"
              onChange={(e) => set('q', (e.target as HTMLInputElement).value)}
            />
          </label>
          <label>
            Tag
            <select value={filters.tag} onChange={(e) => set('tag', (e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {(data?.facets.tags ?? (filters.tag ? [filters.tag] : [])).map((t) => (
                <option value={t}>{t}</option>
              ))}
            </select>
          </label>
          <label>
            State
            <select value={filters.state} onChange={(e) => set('state', (e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {STATES.map((s) => (
                <option value={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            Model
            <select value={filters.model} onChange={(e) => set('model', (e.target as HTMLSelectElement).value)}>
              <option value="">any</option>
              {(data?.facets.models ?? (filters.model ? [filters.model] : [])).map((m) => (
                <option value={m}>{m}</option>
              ))}
            </select>
          </label>
        </form>
      </search>
      <ErrorNote error={error} />
      {data === null ? (
        <p class="muted">Loading the fleet…</p>
      ) : data.total === 0 ? (
        <p class="empty">No device matches. Provision one with `outpost device provision`, or clear the filters.</p>
      ) : (
        <>
          <table class="fleet responsive">
            <caption class="sr-only">
              Devices {data.offset + 1} to {data.offset + data.devices.length} of {data.total}
            </caption>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Tags</th>
                <th scope="col">Agent</th>
                <th scope="col">Backends &amp; hardware</th>
                <th scope="col">Models (active → desired)</th>
                <th scope="col">Telemetry</th>
              </tr>
            </thead>
            <tbody>
              {data.devices.map((d) => (
                <Row d={d} />
              ))}
            </tbody>
          </table>
          <Pager
            offset={data.offset}
            limit={data.limit}
            total={data.total}
            onPage={(o) => go(['fleet'], { ...filters, offset: o || undefined })}
          />
        </>
      )}
    </>
  );
}

function Row({ d }: { d: FleetRow }) {
  return (
    <tr data-device={d.device}>
      <th scope="row" data-label="Device">
        <a href={href(['devices', d.device])}>{d.device}</a>
        <div>
          <Status status={d.status} at={d.lastSeen} />
        </div>
      </th>
      <td data-label="Tags">
        {d.tags.length ? d.tags.map((t) => <span class="chip">{t}</span>) : <span class="muted">none</span>}
      </td>
      <td data-label="Agent">{d.agentVersion ?? <span class="muted">not reported</span>}</td>
      <td data-label="Backends">
        {d.backends.length === 0 ? <span class="muted">not reported</span> : null}
        {d.backends.map((b) => (
          <span class={`chip ${b.available ? 'chip-ok' : 'chip-off'}`} title={b.reason ?? ''}>
            {b.name}
            {b.available ? '' : ' (unavailable)'}
          </span>
        ))}
        {d.hardware.length ? <div class="muted small">{d.hardware.join(' · ')}</div> : null}
      </td>
      <td data-label="Models">
        {d.models.length === 0 ? <span class="muted">no models</span> : d.models.map((m) => <ModelLine m={m} />)}
        {d.desiredError ? (
          <div class="state-failed">
            refused desired state <code class="code">{d.desiredError.code}</code>
          </div>
        ) : null}
      </td>
      <td data-label="Telemetry" class="sparks">
        {d.recent.length === 0 ? (
          <span class="muted">no telemetry</span>
        ) : (
          <div class="sparks-grid">
            {METRICS.map((m) => (
              <Sparkline points={d.recent} metric={m} />
            ))}
          </div>
        )}
      </td>
    </tr>
  );
}
