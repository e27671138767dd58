import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { ErrorCell, ErrorNote, ModelLine, Section, Status } from './bits';
import { ago, dateTime } from './format';
import { useLiveTick } from './live';
import { href } from './route';
import { Chart, METRICS } from './spark';
import type { DeviceView } from './types';

/** One device: models, telemetry charts, capabilities, recent events, and its tags. */
export function DevicePage({ id }: { id: string }) {
  const [data, setData] = useState<DeviceView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [span, setSpan] = useState<'hour' | 'day'>('hour');
  const [reload, setReload] = useState(0);
  const tick = useLiveTick((c) => c.devices.includes(id));
  useEffect(() => {
    const ac = new AbortController();
    api<DeviceView>(`/v1/fleet/devices/${encodeURIComponent(id)}`, { signal: ac.signal })
      .then((d) => {
        setData(d);
        setError(null);
      })
      .catch((e) => {
        if ((e as Error).name !== 'AbortError') setError(e);
      });
    return () => ac.abort();
  }, [id, tick, reload]);
  if (!data)
    return (
      <>
        <h1>{id}</h1>
        <ErrorNote error={error} />
        {error ? null : <p class="muted">Loading…</p>}
      </>
    );
  const d = data.device;
  const points = data.history[span];
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href(['fleet'])}>Fleet</a> / <span aria-current="page">{d.device}</span>
      </nav>
      <div class="page-head">
        <h1>{d.device}</h1>
        <a class="button" href={href(['deploy'], { kind: 'device', target: d.device })}>
          Deploy to this device…
        </a>
      </div>
      <ErrorNote error={error} />
      <dl class="facts">
        <div>
          <dt>Status</dt>
          <dd>
            <Status status={d.status} />
          </dd>
        </div>
        <div>
          <dt>Last seen</dt>
          <dd title={dateTime(d.lastSeen)}>{ago(d.lastSeen)}</dd>
        </div>
        <div>
          <dt>Agent</dt>
          <dd>{d.agentVersion ?? 'not reported'}</dd>
        </div>
        <div>
          <dt>Desired revision</dt>
          <dd>
            {d.revision} (applied {d.appliedRevision ?? 'none'}){d.converged ? ' · converged' : ''}
          </dd>
        </div>
      </dl>
      <Tags id={d.device} tags={d.tags} onChange={() => setReload((r) => r + 1)} />
      <Section title="Models" id="models-h">
        {d.desiredError ? (
          <p class="state-failed">
            The device refused its last desired state: <code class="code">{d.desiredError.code}</code>{' '}
            {d.desiredError.message}
          </p>
        ) : null}
        {d.models.length === 0 ? (
          <p class="muted">No model is desired or reported.</p>
        ) : (
          <table class="responsive">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Desired</th>
                <th scope="col">Active</th>
                <th scope="col">State</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {d.models.map((m) => (
                <tr>
                  <th scope="row" data-label="Model">
                    {m.id}
                  </th>
                  <td data-label="Desired">{m.desired === null ? 'not desired' : `v${m.desired}`}</td>
                  <td data-label="Active">{m.active === null ? 'none' : `v${m.active}`}</td>
                  <td data-label="State">
                    <ModelLine m={{ ...m, id: '' }} />
                  </td>
                  <ErrorCell error={m.error} />
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Telemetry" id="telemetry-h">
        <fieldset class="segmented">
          <legend class="sr-only">Window</legend>
          {(['hour', 'day'] as const).map((w) => (
            <label>
              <input type="radio" name="window" checked={span === w} onChange={() => setSpan(w)} />
              Last {w}
            </label>
          ))}
        </fieldset>
        <div class="charts">
          {METRICS.map((m) => (
            <Chart points={points} metric={m} />
          ))}
        </div>
        <p class="muted small">
          {span === 'hour' ? '1-minute' : '15-minute'} averages kept by the cloud since it started.
        </p>
      </Section>
      <Section title="Capabilities" id="caps-h">
        {data.capabilities === null ? (
          <p class="muted">Not reported yet.</p>
        ) : (
          <>
            <table class="responsive">
              <thead>
                <tr>
                  <th scope="col">Backend</th>
                  <th scope="col">Available</th>
                  <th scope="col">Frameworks</th>
                  <th scope="col">Hardware</th>
                </tr>
              </thead>
              <tbody>
                {data.capabilities.backends.map((b) => (
                  <tr>
                    <th scope="row" data-label="Backend">
                      {b.name}
                    </th>
                    <td data-label="Available">{b.available ? 'yes' : `no${b.reason ? `: ${b.reason}` : ''}`}</td>
                    <td data-label="Frameworks">{(b.frameworks ?? []).join(', ') || '–'}</td>
                    <td data-label="Hardware">{b.hardware ? 'ran on hardware' : 'no'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {d.hardware.length ? <p>{d.hardware.join(' · ')}</p> : null}
            <details>
              <summary>Host probe (raw)</summary>
              <pre>{JSON.stringify(data.capabilities.host ?? {}, null, 2)}</pre>
            </details>
          </>
        )}
      </Section>
      <Section title="Recent events" id="events-h">
        {data.events.length === 0 ? (
          <p class="muted">Nothing since the cloud started.</p>
        ) : (
          <ol class="events">
            {data.events.map((e) => (
              <li>
                <time datetime={e.at} title={dateTime(e.at)}>
                  {ago(e.at)}
                </time>{' '}
                <span class={`event-${e.kind}`}>{e.text}</span>
                {e.code ? <code class="code">{e.code}</code> : null}
              </li>
            ))}
          </ol>
        )}
      </Section>
    </>
  );
}

function Tags({ id, tags, onChange }: { id: string; tags: string[]; onChange: () => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const patch = async (body: { add?: string[]; remove?: string[] }): Promise<void> => {
    setBusy(true);
    try {
      await api(`/v1/devices/${encodeURIComponent(id)}/tags`, { method: 'PATCH', body });
      setError(null);
      setValue('');
      onChange();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Tags" id="tags-h">
      <ul class="tag-list">
        {tags.length === 0 ? <li class="muted">none</li> : null}
        {tags.map((t) => (
          <li class="chip">
            {t}{' '}
            <button
              type="button"
              class="link"
              aria-label={`Remove tag ${t}`}
              disabled={busy}
              onClick={() => patch({ remove: [t] })}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) void patch({ add: [value.trim()] });
        }}
      >
        <label>
          New tag
          <input value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} maxLength={64} />
        </label>
        <button type="submit" disabled={busy || !value.trim()}>
          Add tag
        </button>
      </form>
      <ErrorNote error={error} />
    </Section>
  );
}
