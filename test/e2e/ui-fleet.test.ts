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
    await f.fleet.deploy({ model: `${MODEL}@1` }, { kind: 'all', value: '*' });
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
    await shoot('fleet');
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
    await page.getByRole('link', { name: 'Models' }).click();
    const table = page.getByRole('region', { name: /acme\/colors/ }).locator('table');
    await expect.poll(() => table.innerText()).toMatch(/v1[\s\S]*admin[\s\S]*4 devices/);
    expect(await table.innerText()).toMatch(/v2 \(latest\)/);
    await shoot('models');
  });

  it('updates without a reload when the fleet changes', async () => {
    await page.getByRole('link', { name: 'Fleet' }).click();
    await page.locator('table.fleet tbody tr').first().waitFor();
    await page.evaluate('window.marker = 42');
    await f.fleet.deploy({ model: `${MODEL}@2` }, { kind: 'device', value: 'cam-4' });
    await expect
      .poll(() => page.locator('tr[data-device="cam-4"]').innerText(), { timeout: 30_000 })
      .toMatch(/acme\/colors\s+v2\s+active/);
    expect(await page.evaluate('window.marker')).toBe(42);
    expect(await page.locator('.live').innerText()).toBe('Live');
  });

  it('logged no console errors and no page errors', () => {
    expect(browser.problems).toEqual([]);
  });
});
