import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { REPO } from './daemon-process.js';
import { missingCommand, skipForPackage } from './requires.js';

/**
 * The web page in a real browser for tests: Debian's chromium (apt-get install chromium; never a
 * downloaded build) driven by playwright-core, in a fresh user-data dir that is removed after.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO, 'test-artifacts', 'ui');
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** True when the browser tests must be skipped (chromium missing on a developer machine; a failure under CI=true). */
export function skipWithoutChromium(): boolean {
  return skipForPackage(
    fs.existsSync(CHROMIUM)
      ? missingCommand(CHROMIUM, ['--version'])
      : `${CHROMIUM} is missing (apt-get install chromium)`,
  );
}

const UI_SRC = path.join(REPO, 'cloud-broker', 'ui');
const UI_OUT = path.join(REPO, 'dist', 'cloud-broker', 'ui', 'static');

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestMtime(p));
    else if (e.name !== 'static') t = Math.max(t, fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Builds the page's bundle (cloud-broker/ui/build.mjs) when it is missing or older than its sources. */
export function ensureUiBundle(): void {
  const built = path.join(UI_OUT, 'app.js');
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= newestMtime(path.join(UI_SRC, 'app'))) return;
  execFileSync(process.execPath, [path.join(UI_SRC, 'build.mjs')], { cwd: REPO, stdio: 'inherit', timeout: 60_000 });
}

export interface TestBrowser {
  context: BrowserContext;
  /** A new tab whose console errors and page errors are collected into `problems`. */
  page(): Promise<Page>;
  /** "console error: ..." and "page error: ..." lines seen so far in tabs made by page(). */
  problems: string[];
  /** Saves a full-page PNG under test-artifacts/ui/ at the page's current size. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(tmpdir(), 'outpost-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: DESKTOP,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const problems: string[] = [];
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return {
    context,
    problems,
    async page() {
      const p = await context.newPage();
      p.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location().url})`);
      });
      p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      return p;
    },
    async screenshot(page, name) {
      const file = path.join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in through the form the way an operator does: the field labelled "Token" and the button "Sign in". */
export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/ui/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}
