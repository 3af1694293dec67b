import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

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

/** Chromium permissions Playwright does not map itself; granted by their web name through the DevTools protocol. */
const CDP_ONLY_PERMISSIONS = new Set(['idle-detection']);

/**
 * A page in a fresh context (own cookies, storage, permissions), navigated to `url`, with `permissions` granted to
 * the page's origin, e.g. `['idle-detection']` for the Idle Detection API (which otherwise needs a user gesture
 * and a prompt). Playwright grants the ones it knows; the Chromium-only ones go through the DevTools protocol
 * (Browser.setPermission for the context, on a DevTools session kept open as long as the context).
 * Close it with `page.context().close()`.
 */
export async function newPage(browser: Browser, url: string, permissions: string[] = []): Promise<Page> {
  const context = await browser.newContext();
  const origin = new URL(url).origin;
  const known = permissions.filter((p) => !CDP_ONLY_PERMISSIONS.has(p));
  const cdpOnly = permissions.filter((p) => CDP_ONLY_PERMISSIONS.has(p));
  if (known.length > 0) await context.grantPermissions(known, { origin });
  const page = await context.newPage();
  await page.goto(url);
  if (cdpOnly.length > 0) {
    const pageSession = await context.newCDPSession(page);
    const { targetInfo } = await pageSession.send('Target.getTargetInfo');
    await pageSession.detach();
    const session = await browser.newBrowserCDPSession();
    for (const name of cdpOnly) {
      await session.send('Browser.setPermission', { permission: { name }, setting: 'granted', origin, browserContextId: targetInfo.browserContextId });
    }
    // Chromium drops a session's permission overrides when that DevTools session detaches: keep it for the context.
    context.on('close', () => void session.detach().catch(() => {}));
  }
  return page;
}
