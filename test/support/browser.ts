import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it when missing). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** True when the browser binary is present (browser tests fail with a clear message otherwise). */
export function hasChromium(): boolean {
  return existsSync(CHROMIUM);
}

/** Launches headless Chromium with no network chatter of its own (no updates, sync or background requests). */
export async function launchChromium(): Promise<Browser> {
  if (!hasChromium()) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
