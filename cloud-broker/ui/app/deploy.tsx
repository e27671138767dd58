import { useState } from 'preact/hooks';
import { api, useApi } from './api';
import { ErrorNote, Section } from './bits';
import { bytes } from './format';
import { describeTarget } from './rollouts';
import { go, type Route } from './route';
import type { Count, FleetPage, ModelView, Plan, RolloutPolicy, RolloutSummary } from './types';

type Fields = Record<
  | 'model'
  | 'version'
  | 'kind'
  | 'target'
  | 'canary'
  | 'batchSize'
  | 'maxPerMinute'
  | 'rateIncrease'
  | 'maxFailures'
  | 'minDevices'
  | 'deviceTimeout'
  | 'soak'
  | 'onFailure'
  | 'maxErrorRate',
  string
>;

/** "3" -> {count: 3}, "25%" -> {percent: 25}; the cloud validates the ranges. */
export function parseCount(text: string, name: string): Count {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(text);
  if (!m) throw new Error(`${name} must be a number of devices (3) or a percentage (25%)`);
  return m[2] ? { percent: Number(m[1]) } : { count: Number(m[1]) };
}

function policyOf(f: Fields): Partial<RolloutPolicy> {
  const p: Partial<RolloutPolicy> = {};
  const num = (v: string, name: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${name} must be a number`);
    return n;
  };
  if (f.canary.trim()) p.canary = parseCount(f.canary, 'Canary');
  if (f.batchSize.trim()) p.batchSize = parseCount(f.batchSize, 'Batch size');
  if (f.maxPerMinute.trim()) p.maxPerMinute = num(f.maxPerMinute, 'Max per minute');
  if (f.rateIncrease.trim()) p.rateIncrease = num(f.rateIncrease, 'Rate increase');
  if (f.maxFailures.trim()) p.maxFailures = parseCount(f.maxFailures, 'Max failures');
  if (f.minDevices.trim()) p.minDevices = num(f.minDevices, 'Min devices');
  if (f.deviceTimeout.trim()) p.deviceTimeoutSeconds = num(f.deviceTimeout, 'Device timeout');
  if (f.soak.trim()) p.soakSeconds = num(f.soak, 'Soak');
  if (f.maxErrorRate.trim()) p.maxErrorRate = num(f.maxErrorRate, 'Max error rate');
  p.onFailure = f.onFailure === 'pause' ? 'pause' : 'rollback';
  return p;
}

/** Deploy a model version with the rollout options; the plan is shown, and must be seen, before it is confirmed. */
export function DeployPage({ route }: { route: Route }) {
  const q = route.params;
  const [f, setF] = useState<Fields>({
    model: q.get('model') ?? '',
    version: q.get('version') ?? '',
    kind: q.get('kind') ?? 'tag',
    target: q.get('target') ?? '',
    canary: '1',
    batchSize: '50%',
    maxPerMinute: '',
    rateIncrease: '',
    maxFailures: '0',
    minDevices: '',
    deviceTimeout: '600',
    soak: '60',
    onFailure: 'rollback',
    maxErrorRate: '',
  });
  const [staged, setStaged] = useState(true);
  const [plan, setPlan] = useState<Plan | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const models = useApi<{ models: ModelView[] }>('/v1/fleet/models', []).data?.models ?? [];
  const facets = useApi<FleetPage>('/v1/fleet/devices?limit=1', []).data?.facets;
  const model = models.find((m) => m.id === f.model);
  const set = (k: keyof Fields) => (e: Event) => {
    setF({ ...f, [k]: (e.target as HTMLInputElement).value });
    // Anything changed makes the plan shown stale: it must be made again before deploying.
    setPlan(null);
  };
  const body = (): Record<string, unknown> => {
    if (!f.model) throw new Error('choose a model');
    if (f.kind !== 'all' && !f.target.trim()) throw new Error(`name the ${f.kind} to deploy to`);
    return {
      model: f.version ? `${f.model}@${f.version}` : f.model,
      target: f.kind === 'all' ? { kind: 'all' } : { kind: f.kind, value: f.target.trim() },
      ...(staged ? { rollout: policyOf(f) } : {}),
    };
  };
  const act = async (fn: () => Promise<void>): Promise<void> => {
    setBusy(true);
    try {
      await fn();
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const showPlan = () =>
    act(async () => {
      setPlan((await api<{ plan: Plan }>('/v1/plans', { method: 'POST', body: body() })).plan);
    });
  const deploy = () =>
    act(async () => {
      const r = await api<{ rollout?: RolloutSummary }>('/v1/deployments', { method: 'POST', body: body() });
      if (r.rollout) go(['rollouts', String(r.rollout.id)]);
      else go(['fleet']);
    });
  // The hint sits beside the label, not in it: the field's name stays its label alone.
  const field = (k: keyof Fields, label: string, hint: string) => (
    <div class="field">
      <label for={`f-${k}`}>{label}</label>
      <input id={`f-${k}`} value={f[k]} onInput={set(k)} aria-describedby={`${k}-hint`} />
      <span id={`${k}-hint`} class="hint">
        {hint}
      </span>
    </div>
  );
  return (
    <>
      <h1>Deploy</h1>
      <form
        class="deploy"
        onSubmit={(e) => {
          e.preventDefault();
          void showPlan();
        }}
      >
        <fieldset>
          <legend>What and where</legend>
          <label>
            Model
            <select value={f.model} onChange={set('model')} required>
              <option value="">choose…</option>
              {models.map((m) => (
                <option value={m.id}>{m.id}</option>
              ))}
            </select>
          </label>
          <label>
            Version
            <select value={f.version} onChange={set('version')}>
              <option value="">latest</option>
              {(model?.versions ?? []).map((v) => (
                <option value={String(v.version)}>v{v.version}</option>
              ))}
            </select>
          </label>
          <label>
            Target
            <select value={f.kind} onChange={set('kind')}>
              <option value="tag">devices with a tag</option>
              <option value="device">one device</option>
              <option value="all">all devices</option>
            </select>
          </label>
          {f.kind === 'all' ? null : (
            <label>
              {f.kind === 'tag' ? 'Tag' : 'Device id'}
              <input
                value={f.target}
                onInput={set('target')}
                list={f.kind === 'tag' ? 'tag-list' : undefined}
                required
              />
            </label>
          )}
          <datalist id="tag-list">
            {(facets?.tags ?? []).map((t) => (
              <option value={t} />
            ))}
          </datalist>
        </fieldset>
        <fieldset>
          <legend>Rollout</legend>
          <label class="check">
            <input
              type="checkbox"
              checked={staged}
              onChange={(e) => {
                setStaged((e.target as HTMLInputElement).checked);
                setPlan(null);
              }}
            />
            Staged rollout (canary, batches, health checks); unchecked deploys to every device at once
          </label>
          {staged ? (
            <div class="grid-fields">
              {field('canary', 'Canary', 'devices first, alone: 1 or 10%; empty for none')}
              {field('batchSize', 'Batch size', 'per batch after the canary: 2 or 25%')}
              {field('maxPerMinute', 'Max per minute', 'devices sent per minute; empty: no limit')}
              {field('rateIncrease', 'Rate increase', 'each batch this many times larger (default 1)')}
              {field('maxFailures', 'Max failures', 'failures before it aborts: 0, 2 or 10%')}
              {field('minDevices', 'Min devices', 'finished devices before failures count')}
              {field('deviceTimeout', 'Device timeout (s)', 'a device not active by then failed')}
              {field('soak', 'Soak (s)', 'healthy this long to succeed')}
              {field('maxErrorRate', 'Max error rate', 'inference errors during the soak, 0..1')}
              <label>
                On failure
                <select value={f.onFailure} onChange={set('onFailure')}>
                  <option value="rollback">roll back</option>
                  <option value="pause">pause</option>
                </select>
              </label>
            </div>
          ) : null}
        </fieldset>
        <button type="submit" disabled={busy}>
          Show plan
        </button>
      </form>
      <ErrorNote error={error} />
      {plan ? <PlanView plan={plan} busy={busy} onDeploy={deploy} /> : null}
    </>
  );
}

function PlanView({ plan, busy, onDeploy }: { plan: Plan; busy: boolean; onDeploy: () => void }) {
  const t = plan.totals;
  return (
    <Section title="Plan" id="plan-h">
      <p data-testid="plan-summary">
        {plan.models.map((m) => `${m.model}@${m.version}`).join(', ')} to {describeTarget(plan.target)}: {t.devices}{' '}
        devices, {t.install} install, {t.keep} keep, {t.remove} remove, {bytes(t.downloadBytes)} to download
        {t.incompatible ? <strong class="state-failed">, {t.incompatible} cannot run it</strong> : null}.
      </p>
      <ol class="batches">
        {plan.batches.map((b) => (
          <li>
            Batch {b.index + 1}
            {b.canary ? ' (canary)' : ''}: {b.devices.join(', ')}
          </li>
        ))}
      </ol>
      <table class="responsive">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Batch</th>
            <th scope="col">Changes</th>
            <th scope="col">Download</th>
            <th scope="col">Can run it</th>
          </tr>
        </thead>
        <tbody>
          {plan.devices.map((d) => (
            <tr data-device={d.device}>
              <th scope="row" data-label="Device">
                {d.device} <span class="muted small">{d.status ?? 'never seen'}</span>
              </th>
              <td data-label="Batch">{d.batch + 1}</td>
              <td data-label="Changes">
                {d.changes.map((c) => (
                  <div>
                    {c.action} {c.model}
                    {c.version !== null ? `@${c.version}` : ''}
                    {c.from !== null && c.action !== 'keep' ? <span class="muted"> (has v{c.from})</span> : null}
                  </div>
                ))}
              </td>
              <td data-label="Download">{bytes(d.downloadBytes)}</td>
              <td data-label="Can run it">
                {d.unreported ? <span class="muted">unknown (no report yet)</span> : null}
                {d.incompatible.length === 0 && !d.unreported ? 'yes' : null}
                {d.incompatible.map((i) => (
                  <div class="state-failed">
                    no: <code class="code">{i.code}</code> {i.message}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>Nothing has changed yet. Deploying sends the new desired state to the devices as the plan shows.</p>
      <button type="button" disabled={busy} onClick={onDeploy}>
        Deploy
      </button>
    </Section>
  );
}
