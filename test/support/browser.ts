import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

/**
 * Headless Chromium for browser tests: Debian's `chromium` package (CI installs it when missing) driven by
 * playwright-core, which downloads no browser of its own. Tests that need it use `it.runIf(hasChromium())`
 * locally; in CI the binary is there.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function hasChromium(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/** Launches Chromium; close it with `browser.close()` in `afterAll`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
}

/**
 * A fresh context (own cookies, storage, permissions); `permissions` are granted for every origin, e.g.
 * `['idle-detection']` for the Idle Detection API, which otherwise needs a user gesture and a prompt.
 */
export async function newContext(browser: Browser, permissions: string[] = []): Promise<BrowserContext> {
  const context = await browser.newContext();
  if (permissions.length > 0) await context.grantPermissions(permissions);
  return context;
}
