import { useState } from 'preact/hooks';
import { api, query, useApi } from './api';
import { Bar, ErrorCell, ErrorNote, Section } from './bits';
import { ago, dateTime } from './format';
import { useEvery, useLiveTick } from './live';
import { href } from './route';
import type { RolloutBatchView, RolloutSummary, RolloutView } from './types';

const ACTIVE = new Set(['running', 'paused']);
/** While a rollout is active its view re-reads this often as well as on device events. */
const ACTIVE_REFRESH_MS = 2000;

export function describeTarget(t: { kind: string; value: string }): string {
  return t.kind === 'all' ? 'all devices' : `${t.kind} ${t.value}`;
}

function models(r: RolloutSummary): string {
  return r.models.map((m) => `${m.model}@${m.version}`).join(', ');
}

function RolloutState({ r }: { r: RolloutSummary }) {
  return (
    <span>
      <span class={`state state-${r.state}`}>{r.state}</span>
      {r.rolledBack ? <span class="state state-rolled-back">rolled back</span> : null}
      {r.reason ? (
        <code class="code" title={r.reason.message}>
          {r.reason.code}
        </code>
      ) : null}
    </span>
  );
}

/** Every rollout, newest first, with its progress. */
export function RolloutsPage() {
  // Every kind of change matters: a telemetry sample can end a device's soak.
  const tick = useLiveTick();
  const [active, setActive] = useState(false);
  const every = useEvery(ACTIVE_REFRESH_MS, active);
  const { data, error } = useApi<{ rollouts: RolloutSummary[] }>(`/v1/rollouts${query({ limit: 100 })}`, [tick, every]);
  const anyActive = (data?.rollouts ?? []).some((r) => ACTIVE.has(r.state));
  if (anyActive !== active) setActive(anyActive);
  return (
    <>
      <div class="page-head">
        <h1>Rollouts</h1>
        <a class="button" href={href(['deploy'])}>
          Deploy…
        </a>
      </div>
      <ErrorNote error={error} />
      {data === null ? (
        <p class="muted">Loading…</p>
      ) : data.rollouts.length === 0 ? (
        <p class="empty">No rollout yet. A deploy with rollout options (canary, batches) starts one.</p>
      ) : (
        <table class="responsive">
          <thead>
            <tr>
              <th scope="col">Rollout</th>
              <th scope="col">Models</th>
              <th scope="col">Target</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Started</th>
            </tr>
          </thead>
          <tbody>
            {data.rollouts.map((r) => (
              <tr data-rollout={r.id}>
                <th scope="row" data-label="Rollout">
                  <a href={href(['rollouts', String(r.id)])}>#{r.id}</a>
                </th>
                <td data-label="Models">{models(r)}</td>
                <td data-label="Target">{describeTarget(r.target)}</td>
                <td data-label="State">
                  <RolloutState r={r} />
                </td>
                <td data-label="Progress">
                  <Bar value={r.counts.succeeded} max={r.counts.total} label={`Rollout ${r.id}: devices succeeded`} />
                  {r.counts.failed ? <span class="state-failed"> {r.counts.failed} failed</span> : null}
                </td>
                <td data-label="Started" title={dateTime(r.createdAt)}>
                  {ago(r.createdAt)} by {r.createdBy}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** One rollout: its batches with progress, every device's state and failure code, and its controls. */
export function RolloutPage({ id }: { id: string }) {
  const [reload, setReload] = useState(0);
  const tick = useLiveTick();
  const [active, setActive] = useState(false);
  const every = useEvery(ACTIVE_REFRESH_MS, active);
  const { data, error } = useApi<{ rollout: RolloutView }>(`/v1/rollouts/${encodeURIComponent(id)}`, [
    tick,
    reload,
    every,
  ]);
  const r = data?.rollout;
  const isActive = r ? ACTIVE.has(r.state) : false;
  if (isActive !== active) setActive(isActive);
  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href(['rollouts'])}>Rollouts</a> / <span aria-current="page">#{id}</span>
      </nav>
      <h1>Rollout #{id}</h1>
      <ErrorNote error={error} />
      {!r ? (
        error ? null : (
          <p class="muted">Loading…</p>
        )
      ) : (
        <>
          <dl class="facts">
            <div>
              <dt>State</dt>
              <dd data-testid="rollout-state">
                <RolloutState r={r} />
              </dd>
            </div>
            <div>
              <dt>Models</dt>
              <dd>{models(r)}</dd>
            </div>
            <div>
              <dt>Target</dt>
              <dd>{describeTarget(r.target)}</dd>
            </div>
            <div>
              <dt>Devices</dt>
              <dd>
                <Bar value={r.counts.succeeded} max={r.counts.total} label="Devices succeeded" /> · {r.counts.failed}{' '}
                failed
              </dd>
            </div>
            <div>
              <dt>Started</dt>
              <dd title={dateTime(r.createdAt)}>
                {ago(r.createdAt)} by {r.createdBy}
              </dd>
            </div>
          </dl>
          {r.reason ? (
            <p class="error">
              <code class="code">{r.reason.code}</code> {r.reason.message}
            </p>
          ) : null}
          <Controls r={r} onDone={() => setReload((x) => x + 1)} />
          {r.batches.map((b) => (
            <Batch b={b} />
          ))}
          <p class="muted small">
            Policy: canary {fmtCount(r.policy.canary)}, batches of {fmtCount(r.policy.batchSize)}, at most{' '}
            {r.policy.maxPerMinute ?? 'any number of'} devices a minute, rate ×{r.policy.rateIncrease}, abort above{' '}
            {fmtCount(r.policy.maxFailures)} failures (after {r.policy.minDevices} devices), soak {r.policy.soakSeconds}{' '}
            s, timeout {r.policy.deviceTimeoutSeconds} s, on failure {r.policy.onFailure}.{' '}
            <a href={href(['audit'], { rollout: r.id })}>Audit trail of this rollout</a>
          </p>
        </>
      )}
    </>
  );
}

function fmtCount(c: { count: number } | { percent: number } | null): string {
  if (c === null) return 'none';
  return 'count' in c ? String(c.count) : `${c.percent}%`;
}

function Batch({ b }: { b: RolloutBatchView }) {
  const done = b.devices.filter((d) => d.state === 'succeeded').length;
  const title = `Batch ${b.index + 1}${b.canary ? ' (canary)' : ''}`;
  return (
    <Section title={title} id={`batch-${b.index}`}>
      <p>
        <span class={`state state-${b.state === 'in-progress' ? 'running' : b.state}`}>{b.state}</span>{' '}
        <Bar value={done} max={b.size} label={`${title}: devices succeeded`} />
        {b.sentAt ? <span class="muted small"> · sent {ago(b.sentAt)}</span> : null}
      </p>
      <table class="responsive">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">State</th>
            <th scope="col">Version</th>
            <th scope="col">Since</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {b.devices.map((d) => (
            <tr data-device={d.device}>
              <th scope="row" data-label="Device">
                <a href={href(['devices', d.device])}>{d.device}</a>
              </th>
              <td data-label="State">
                <span class={`state state-${d.state === 'succeeded' ? 'active' : d.state}`}>{d.state}</span>
              </td>
              <td data-label="Version">
                {d.models.map((m) => (
                  <div>
                    {m.model}@{m.version}{' '}
                    <span class="muted small">
                      {m.active === m.version ? m.state : `serving v${m.active ?? 'none'}`}
                    </span>
                  </div>
                ))}
              </td>
              <td data-label="Since" title={dateTime(d.since)}>
                {ago(d.since)}
              </td>
              <ErrorCell error={d.error} />
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

/** Pause / resume / abort, and rollback of a finished rollout; each asks once before it acts. */
function Controls({ r, onDone }: { r: RolloutView; onDone: () => void }) {
  const [asking, setAsking] = useState<null | 'abort' | 'rollback'>(null);
  const [keep, setKeep] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (fn: () => Promise<unknown>): Promise<void> => {
    setBusy(true);
    try {
      await fn();
      setError(null);
      setAsking(null);
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const post = (verb: string, body?: unknown) => () =>
    api(`/v1/rollouts/${r.id}/${verb}`, { method: 'POST', body: body ?? {} });
  const rollback = async (): Promise<void> => {
    for (const m of r.models)
      await api('/v1/rollbacks', { method: 'POST', body: { model: m.model, target: r.target } });
  };
  const active = ACTIVE.has(r.state);
  // A rollout that ended and was rolled back has nothing left to do.
  if (!active && r.rolledBack && !error) return null;
  return (
    <section class="card actions" aria-label="Rollout actions">
      {r.state === 'running' ? (
        <button type="button" disabled={busy} onClick={() => run(post('pause'))}>
          Pause
        </button>
      ) : null}
      {r.state === 'paused' ? (
        <button type="button" disabled={busy} onClick={() => run(post('resume'))}>
          Resume
        </button>
      ) : null}
      {active ? (
        <button type="button" class="danger" disabled={busy} onClick={() => setAsking('abort')}>
          Abort…
        </button>
      ) : null}
      {!active && !r.rolledBack ? (
        <button type="button" class="secondary" disabled={busy} onClick={() => setAsking('rollback')}>
          Roll back…
        </button>
      ) : null}
      {asking === 'abort' ? (
        <div class="confirm" role="alertdialog" aria-labelledby="abort-q">
          <p id="abort-q">
            Abort rollout #{r.id}? No further device gets {models(r)}
            {keep ? '; devices that took it keep it.' : '; devices that took it go back to their previous version.'}
          </p>
          <label class="check">
            <input type="checkbox" checked={keep} onChange={(e) => setKeep((e.target as HTMLInputElement).checked)} />
            Keep the new version on devices that already took it
          </label>
          <button type="button" class="danger" disabled={busy} onClick={() => run(post('abort', { keep }))}>
            Abort rollout
          </button>{' '}
          <button type="button" class="secondary" onClick={() => setAsking(null)}>
            Cancel
          </button>
        </div>
      ) : null}
      {asking === 'rollback' ? (
        <div class="confirm" role="alertdialog" aria-labelledby="rb-q">
          <p id="rb-q">
            Roll back {r.models.map((m) => m.model).join(', ')} on {describeTarget(r.target)} to the deployment before
            this one? Every device of the target gets a new desired state at once.
          </p>
          <button type="button" class="danger" disabled={busy} onClick={() => run(rollback)}>
            Roll back now
          </button>{' '}
          <button type="button" class="secondary" onClick={() => setAsking(null)}>
            Cancel
          </button>
        </div>
      ) : null}
      <ErrorNote error={error} />
    </section>
  );
}
