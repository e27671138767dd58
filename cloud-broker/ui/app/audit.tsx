import { useState } from 'preact/hooks';
import { query, useApi } from './api';
import { ErrorNote } from './bits';
import { dateTime } from './format';
import { useLiveTick } from './live';
import { go, href, type Route } from './route';
import type { AuditEntry } from './types';

/** The newest entries shown at first; the cloud answers oldest first, bounded by AUDIT_FETCH. */
const SHOWN = 100;
const AUDIT_FETCH = 10_000;

/** An ISO instant as the value of a datetime-local input (local time, minutes). */
function localInput(iso: string): string {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return '';
  const d = new Date(t - new Date(t).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** The audit trail: who changed what in the fleet, newest first, filtered by device or rollout. */
export function AuditPage({ route }: { route: Route }) {
  const device = route.params.get('device') ?? '';
  const rollout = route.params.get('rollout') ?? '';
  const since = route.params.get('since') ?? '';
  const [shown, setShown] = useState(SHOWN);
  const tick = useLiveTick((c) => c.kinds.includes('desired') || c.kinds.includes('device'));
  const { data, error } = useApi<{ entries: AuditEntry[] }>(
    `/v1/audit${query({ device, rollout, since, limit: AUDIT_FETCH })}`,
    [tick],
  );
  const entries = [...(data?.entries ?? [])].reverse();
  const set = (k: string) => (e: Event) =>
    go(['audit'], { device, rollout, since, [k]: (e.target as HTMLInputElement).value || undefined });
  return (
    <>
      <h1>Audit trail</h1>
      <search aria-label="Audit filters">
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <label>
            Device
            <input value={device} onChange={set('device')} />
          </label>
          <label>
            Rollout
            <input value={rollout} inputMode="numeric" onChange={set('rollout')} />
          </label>
          <label>
            Since
            <input
              type="datetime-local"
              value={localInput(since)}
              onChange={(e) => {
                const v = (e.target as HTMLInputElement).value;
                // The input speaks local time; the API takes an ISO instant.
                go(['audit'], { device, rollout, since: v ? new Date(v).toISOString() : undefined });
              }}
            />
          </label>
        </form>
      </search>
      <ErrorNote error={error} />
      {data === null ? (
        <p class="muted">Loading…</p>
      ) : entries.length === 0 ? (
        <p class="empty">No entry matches.</p>
      ) : (
        <>
          <table class="responsive audit">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Devices</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {entries.slice(0, shown).map((e) => (
                <tr data-action={e.action}>
                  <th scope="row" data-label="When">
                    <time datetime={e.at}>{dateTime(e.at)}</time>
                  </th>
                  <td data-label="Who">
                    {e.actor.kind}/{e.actor.name}
                  </td>
                  <td data-label="What">
                    {e.action}
                    {e.rollout !== null ? (
                      <>
                        {' '}
                        <a href={href(['rollouts', String(e.rollout)])}>#{e.rollout}</a>
                      </>
                    ) : null}
                  </td>
                  <td data-label="Devices">
                    {e.devices.slice(0, 8).map((d, i) => (
                      <>
                        {i ? ', ' : ''}
                        <a href={href(['devices', d])}>{d}</a>
                      </>
                    ))}
                    {e.devices.length > 8 ? ` and ${e.devices.length - 8} more` : ''}
                  </td>
                  <td data-label="Details">
                    <code class="details">{JSON.stringify(e.details)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {entries.length > shown ? (
            <button type="button" class="secondary" onClick={() => setShown(shown + SHOWN)}>
              Show {Math.min(SHOWN, entries.length - shown)} older entries
            </button>
          ) : null}
        </>
      )}
    </>
  );
}
