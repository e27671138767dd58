import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHONE, ensureUiBundle, launchBrowser, skipWithoutChromium, type TestBrowser } from '../helpers/browser.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * 1,000 devices provisioned through the fleet API (no agents: this is about the page's paging,
 * not about convergence). The cloud pages and filters, so the browser gets one page of rows and
 * a pager, never the whole fleet.
 */
const N = 1000;
const id = (i: number): string => `dev-${String(i).padStart(4, '0')}`;

let f: TestFleet;
let browser: TestBrowser;
let page: Page;

describe.skipIf(skipWithoutChromium())('the fleet page with 1,000 devices', () => {
  beforeAll(async () => {
    ensureUiBundle();
    f = await startTestFleet();
    const queue = Array.from({ length: N }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift())
          await f.fleet.provision(id(i), [i % 10 === 0 ? 'dock' : 'lobby']);
      }),
    );
    browser = await launchBrowser();
    page = await browser.page();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  it('answers one page of rows from the API, with the total', async () => {
    const get = async (q: string) =>
      fetch(`${f.cloud.httpUrl}/v1/fleet/devices${q}`, { headers: { authorization: `Bearer ${f.adminToken}` } });
    const first = (await (await get('?limit=50')).json()) as { total: number; devices: { device: string }[] };
    expect(first.total).toBe(N);
    expect(first.devices.map((d) => d.device)).toEqual(Array.from({ length: 50 }, (_, i) => id(i)));
    const dock = (await (await get('?tag=dock&offset=90')).json()) as { total: number; devices: { device: string }[] };
    expect(dock.total).toBe(100);
    expect(dock.devices.map((d) => d.device)).toEqual(Array.from({ length: 10 }, (_, i) => id(900 + i * 10)));
    const tooMany = await get('?limit=5000');
    expect(tooMany.status).toBe(400);
    expect(((await tooMany.json()) as { code: string }).code).toBe('BAD_REQUEST');
  });

  it('shows a page of 50 rows and a pager, and pages and filters on the server', async () => {
    // With the keyboard only: the Token field has focus order first, Enter submits.
    await page.goto(`${f.cloud.httpUrl}/ui/`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.id')).toBe('token');
    await page.keyboard.type(f.adminToken);
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    const rows = page.locator('table.fleet tbody tr');
    await expect.poll(() => rows.count(), { timeout: 15_000 }).toBe(50);
    const pager = page.getByRole('navigation', { name: 'Pages' });
    expect(await pager.innerText()).toMatch(/1–50 of 1000 · page 1 of 20/);
    await browser.screenshot(page, 'fleet-1000-desktop');
    await pager.getByRole('button', { name: 'Next' }).click();
    await expect.poll(() => pager.innerText()).toMatch(/51–100 of 1000 · page 2 of 20/);
    expect(await rows.first().getAttribute('data-device')).toBe(id(50));
    expect(await rows.count()).toBe(50);
    await page.getByLabel('Tag').selectOption('dock');
    await expect.poll(() => pager.innerText()).toMatch(/1–50 of 100 · page 1 of 2/);
    await page.getByLabel('Device').fill('dev-09');
    await page.getByLabel('Device').press('Enter');
    await expect.poll(() => pager.innerText()).toMatch(/1–10 of 10/);
    expect(await rows.count()).toBe(10);
    await page.setViewportSize(PHONE);
    await browser.screenshot(page, 'fleet-1000-phone');
  });

  it('logged no console errors and no page errors', () => {
    expect(browser.problems).toEqual([]);
  });
});
