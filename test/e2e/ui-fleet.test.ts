import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import {
  DESKTOP,
  PHONE,
  ensureUiBundle,
  launchBrowser,
  signIn,
  skipWithoutChromium,
  type TestBrowser,
} from '../helpers/browser.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';

/**
 * The web page against a whole Outpost: the real cloud, four real agent processes reporting
 * over MQTT (with telemetry), and Debian's chromium driving the page as an operator would.
 * Screenshots of every view at desktop and phone width go to test-artifacts/ui/.
 */
const DEVICES: [string, string[]][] = [
  ['cam-1', ['lobby']],
  ['cam-2', ['lobby']],
  ['cam-3', ['dock']],
  ['cam-4', ['dock']],
];
const MODEL = 'acme/colors';

let f: TestFleet;
let browser: TestBrowser;
let page: Page;
const agents: AgentProcess[] = [];

async function converged(model: string, version: number, ids = DEVICES.map(([d]) => d)): Promise<boolean> {
  const devs = (await f.fleet.rollout()).filter((d) => ids.includes(d.device));
  return devs.every(
    (d) =>
      d.status === 'online' && d.models.some((m) => m.id === model && m.active === version && m.state === 'active'),
  );
}

/** A link of the main navigation (breadcrumbs and buttons repeat some names). */
const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

async function shoot(name: string): Promise<void> {
  await page.setViewportSize(DESKTOP);
  await browser.screenshot(page, `${name}-desktop`);
  await page.setViewportSize(PHONE);
  await browser.screenshot(page, `${name}-phone`);
  await page.setViewportSize(DESKTOP);
}

describe.skipIf(skipWithoutChromium())('the web page in chromium', () => {
  beforeAll(async () => {
    ensureUiBundle();
    f = await startTestFleet();
    await f.publish(MODEL);
    await f.publish(MODEL, 'classifier', { labels: ['red', 'green', 'blue', 'other'] });
    for (const [id, tags] of DEVICES) {
      const provisioned = await f.provision(id, tags);
      const cfg = await writeAgentConfig(provisioned, join(f.root, `run-${id}.json`), {
        modelsDir: join(f.root, `models-${id}`),
        socket: join(f.root, `${id}.sock`),
        extra: { telemetry: { enabled: true, intervalSeconds: 5 } },
      });
      agents.push(spawnAgent(cfg));
    }
    // Per tag, so that a later rollback on a tag has an earlier deployment to go back to.
    await f.fleet.deploy({ model: `${MODEL}@1` }, { kind: 'tag', value: 'lobby' });
    await f.fleet.deploy({ model: `${MODEL}@1` }, { kind: 'tag', value: 'dock' });
    await waitFor('every agent reports v1 active', () => converged(MODEL, 1), 60_000);
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    for (const a of agents) await a.kill();
    await f?.close();
  });

  it('keeps the API closed to a browser without a token', async () => {
    // A tab of its own: the 401 it provokes is the point here, not a console error of the page.
    const bare = await browser.context.newPage();
    await bare.goto(`${f.cloud.httpUrl}/ui/`);
    await bare.getByLabel('Token').waitFor();
    const statuses = await bare.evaluate(async () =>
      Promise.all(['/v1/fleet/devices', '/v1/devices', '/v1/events'].map(async (p) => (await fetch(p)).status)),
    );
    expect(statuses).toEqual([401, 401, 401]);
    for (const [size, name] of [
      [DESKTOP, 'signin-desktop'],
      [PHONE, 'signin-phone'],
    ] as const) {
      await bare.setViewportSize(size);
      await browser.screenshot(bare, name);
    }
    await bare.close();
  });

  it('signs in with the token and shows every device with the state its agent reports', async () => {
    page = await browser.page();
    await signIn(page, f.cloud.httpUrl, f.adminToken);
    // Kept for the tab's session only, never in the URL.
    expect(await page.evaluate("sessionStorage.getItem('outpost.token')")).toBe(f.adminToken);
    expect(page.url()).not.toContain(f.adminToken);
    const rows = page.locator('table.fleet tbody tr');
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(4);
    for (const [id, tags] of DEVICES) {
      const row = page.locator(`tr[data-device="${id}"]`);
      await expect.poll(() => row.innerText()).toMatch(/online/);
      const text = await row.innerText();
      expect(text).toContain(tags[0]);
      expect(text).toMatch(/acme\/colors\s+v1\s+active/);
      expect(text).toContain('onnx');
    }
    // Telemetry arrives every 5 s from each agent: sparklines show up without a reload.
    await expect
      .poll(() => page.locator('tr[data-device="cam-1"] .spark svg').count(), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(3);
    await shoot('fleet-signed-in');
  });

  it('filters the fleet by tag, state and model', async () => {
    await page.getByLabel('Tag').selectOption('dock');
    await expect.poll(() => page.locator('table.fleet tbody tr').count()).toBe(2);
    expect(page.url()).toContain('tag=dock');
    await page.getByLabel('State').selectOption('failed');
    await expect.poll(() => page.locator('.empty').count()).toBe(1);
    await page.getByLabel('State').selectOption('converged');
    await page.getByLabel('Model').selectOption(MODEL);
    await expect.poll(() => page.locator('table.fleet tbody tr').count()).toBe(2);
    await page.getByLabel('Tag').selectOption('');
    await page.getByLabel('State').selectOption('');
    await page.getByLabel('Model').selectOption('');
    await expect.poll(() => page.locator('table.fleet tbody tr').count()).toBe(4);
  });

  it('shows a device: models, telemetry, capabilities, events; and tags it', async () => {
    await page.getByRole('link', { name: 'cam-1', exact: true }).click();
    await page.getByRole('heading', { name: 'cam-1', level: 1 }).waitFor();
    const models = page.getByRole('region', { name: 'Models' });
    await expect.poll(() => models.innerText()).toMatch(/acme\/colors[\s\S]*v1[\s\S]*active/);
    expect(await page.getByRole('region', { name: 'Capabilities' }).innerText()).toContain('onnx');
    // CPU, memory and disk always; temperature only where the host has a sensor.
    expect(await page.locator('figure.chart').count()).toBe(4);
    await expect.poll(() => page.locator('figure.chart svg').count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    const events = page.getByRole('region', { name: 'Recent events' });
    await expect.poll(() => events.innerText()).toMatch(/acme\/colors v1 active/);
    await page.getByLabel('New tag').fill('pilot');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('button', { name: 'Remove tag pilot' }).waitFor();
    expect((await f.fleet.showDevice('cam-1')).device.tags).toEqual(['lobby', 'pilot']);
    await shoot('device');
  });

  it('lists models with files, size, publisher and the devices running each version', async () => {
    await nav('Models').click();
    const table = page.getByRole('region', { name: /acme\/colors/ }).locator('table');
    await expect.poll(() => table.innerText()).toMatch(/v1[\s\S]*admin[\s\S]*4 devices/);
    expect(await table.innerText()).toMatch(/v2 \(latest\)/);
    await shoot('models');
  });

  it('updates without a reload when the fleet changes', async () => {
    await nav('Fleet').click();
    await page.locator('table.fleet tbody tr').first().waitFor();
    await page.evaluate('window.marker = 42');
    await f.fleet.deploy({ model: `${MODEL}@2` }, { kind: 'device', value: 'cam-4' });
    await expect
      .poll(() => page.locator('tr[data-device="cam-4"]').innerText(), { timeout: 30_000 })
      .toMatch(/acme\/colors\s+v2\s+active/);
    expect(await page.evaluate('window.marker')).toBe(42);
    expect(await page.locator('.live').innerText()).toBe('Live');
  });

  it('starts a staged deploy from the page, shows the plan first, and watches it finish', async () => {
    await nav('Deploy').click();
    await page.getByRole('heading', { name: 'Deploy', level: 1 }).waitFor();
    await expect.poll(() => page.getByLabel('Model').locator('option').count()).toBeGreaterThan(1);
    await page.getByLabel('Model').selectOption(MODEL);
    await page.getByLabel('Version').selectOption('2');
    await page.getByLabel('Target').selectOption('tag');
    await page.getByLabel('Tag', { exact: true }).fill('lobby');
    await page.getByLabel('Canary', { exact: true }).fill('1');
    await page.getByLabel('Batch size', { exact: true }).fill('1');
    await page.getByLabel('Soak (s)', { exact: true }).fill('2');
    await page.getByLabel('Device timeout (s)', { exact: true }).fill('90');
    // No Deploy button before the plan is on screen.
    expect(await page.getByRole('button', { name: 'Deploy', exact: true }).count()).toBe(0);
    await page.getByRole('button', { name: 'Show plan' }).click();
    const plan = page.getByRole('region', { name: 'Plan' });
    await expect.poll(() => plan.getByTestId('plan-summary').innerText()).toMatch(/2 devices, 2 install, 0 keep/);
    expect(await plan.locator('ol.batches li').allInnerTexts()).toEqual(['Batch 1 (canary): cam-1', 'Batch 2: cam-2']);
    // Planning moved nothing.
    expect((await f.fleet.rollout()).find((d) => d.device === 'cam-1')!.models[0].desired).toBe(1);
    await shoot('deploy-plan');
    await plan.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.waitForURL(/#\/rollouts\/\d+$/);
    const id = /#\/rollouts\/(\d+)$/.exec(page.url())![1];
    // Waits on the API so that a timeout shows the rollout's whole state, then checks the page.
    await waitFor(
      'the rollout to finish',
      async () => {
        const r = await fetch(`${f.cloud.httpUrl}/v1/rollouts/${id}`, {
          headers: { authorization: `Bearer ${f.adminToken}` },
        });
        const body = (await r.json()) as { rollout: { state: string } };
        if (body.rollout.state !== 'running')
          return body.rollout.state === 'done' ? body : Promise.reject(new Error(JSON.stringify(body)));
        throw new Error(JSON.stringify(body));
      },
      120_000,
    );
    const state = page.getByTestId('rollout-state');
    await expect.poll(() => state.innerText()).toMatch(/done/);
    const batches = page.getByRole('region', { name: /^Batch/ });
    expect(await batches.count()).toBe(2);
    expect(await batches.first().innerText()).toMatch(/Batch 1 \(canary\)[\s\S]*done[\s\S]*cam-1[\s\S]*succeeded/);
    await shoot('rollout-done');
    await waitFor('lobby devices on v2', () => converged(MODEL, 2, ['cam-1', 'cam-2']), 30_000);
  }, 180_000);

  it('pauses, resumes and aborts another rollout, and the devices keep their version', async () => {
    const v3 = await f.publish(MODEL, 'classifier', { labels: ['r', 'g', 'b', 'x'] });
    const res = await fetch(`${f.cloud.httpUrl}/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.adminToken}`, 'content-type': 'application/json' },
      // A long soak keeps the canary soaking, so the rollout is still running when it is aborted.
      body: JSON.stringify({
        model: `${MODEL}@${v3}`,
        target: { kind: 'tag', value: 'dock' },
        rollout: { canary: { count: 1 }, batchSize: { count: 1 }, soakSeconds: 3600 },
      }),
    });
    expect(res.status).toBe(201);
    const { rollout } = (await res.json()) as { rollout: { id: number } };
    await nav('Rollouts').click();
    await page.getByRole('link', { name: `#${rollout.id}` }).click();
    const state = page.getByTestId('rollout-state');
    await expect.poll(() => state.innerText()).toMatch(/running/);
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => state.innerText()).toMatch(/paused/);
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => state.innerText()).toMatch(/running/);
    await page.getByRole('button', { name: 'Abort…' }).click();
    const confirm = page.getByRole('alertdialog');
    expect(await confirm.innerText()).toMatch(/go back to their previous version/);
    await confirm.getByRole('button', { name: 'Abort rollout' }).click();
    await expect.poll(() => state.innerText()).toMatch(/aborted/);
    await shoot('rollout-aborted');
    // The second dock device never got v3, and the canary is told its previous version again.
    const dock = async () => (await f.fleet.rollout()).filter((d) => ['cam-3', 'cam-4'].includes(d.device));
    await waitFor('no dock device desires v3', async () => (await dock()).every((d) => d.models[0].desired !== v3));
    await nav('Rollouts').click();
    await expect.poll(() => page.locator('tbody tr[data-rollout]').count()).toBe(2);
    await shoot('rollouts');
  });

  it('rolls back the finished rollout from its page', async () => {
    // The list is newest first: the last row is the staged deploy that finished.
    await page.locator('tbody tr[data-rollout]').last().getByRole('link').click();
    await expect.poll(() => page.getByTestId('rollout-state').innerText()).toMatch(/done/);
    await page.getByRole('button', { name: 'Roll back…' }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Roll back now' }).click();
    await waitFor('lobby devices back on v1', () => converged(MODEL, 1, ['cam-1', 'cam-2']), 60_000);
  });

  it('shows the audit trail of every change, with who made it', async () => {
    await nav('Audit').click();
    const rows = page.locator('table.audit tbody tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(5);
    const text = await page.locator('table.audit').innerText();
    for (const action of ['rollout.abort', 'rollout.pause', 'rollout.resume', 'rollout.done', 'rollback', 'device.tag'])
      expect(text).toContain(action);
    expect(await page.locator('tr[data-action="rollout.abort"]').innerText()).toContain('admin/admin');
    await shoot('audit');
  });

  it('shows a minute of telemetry as sparklines on the fleet page', async () => {
    await nav('Fleet').click();
    await expect
      .poll(() => page.locator('tr[data-device="cam-1"] .spark path').first().getAttribute('d'))
      .toMatch(/L.*L/);
    await shoot('fleet');
  });

  it('logged no console errors and no page errors', () => {
    expect(browser.problems).toEqual([]);
  });
});
