import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.js';
import { NodeProcess } from './support/node-process.js';
import { fcmRig, type VendorRig } from './support/vendor-rigs.js';
import { TestClient, until } from './support/ws-client.js';
import { startFcmServer, type FcmServer } from './vendors/fcm-server.js';

/**
 * Issue 12, dashboard: headless Chromium against a real node. A load script sends at a steady rate while the page
 * is live; the accepted rate the page shows must match what the script had accepted in the page's own window. FCM is
 * configured against the local FCM stand-in, so vendor outcomes are real answers (an unconfigured vendor is not
 * reachable by push, PROTOCOL section 4, and would show none).
 */
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'dashboard');
const RATE = 40; // messages per second
const SECONDS = 7;

describe('dashboard in a browser', () => {
  let node: NodeProcess;
  let browser: Browser;
  let page: Page;
  let fcm: FcmServer;
  let rig: VendorRig;
  const clients: TestClient[] = [];
  /** A client that acks every message it is sent, as a real one does. */
  const acking = async (claims: Parameters<typeof TestClient.session>[2]) => {
    const c = await TestClient.session(node.wsUrl, node.jwtSecret, claims);
    c.ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f.type === 'message') c.send({ type: 'ack', id: f.id });
    });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    fcm = await startFcmServer({ tls: true });
    rig = fcmRig(fcm);
    node = await NodeProcess.start({
      env: { NODE_EXTRA_CA_CERTS: fcm.caFile!, SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: fcm.serviceAccountFile, SWITCHBOARD_FCM_ENDPOINT: fcm.origin },
    });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(`${node.url}/dashboard`);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await browser?.close();
    await node?.stop();
    await node?.removeData();
    await fcm?.close();
  });

  it('loads without the key, embeds no secret, and refuses a wrong key', async () => {
    const html = await page.content();
    expect(html).not.toContain(node.apiKey);
    expect(await (await fetch(`${node.url}/pages/dashboard.js`)).text()).not.toContain(node.apiKey);
    await page.getByLabel('API key').fill('not-the-key-at-all');
    await page.getByLabel('API key').press('Enter'); // keyboard: Enter connects
    await page.locator('#status').filter({ hasText: 'refused (401 unauthorized)' }).waitFor();
    // Keyboard: Tab from the key field reaches Connect.
    await page.getByLabel('API key').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.id')).toBe('connect');
  });

  it('shows the accepted rate a load script sends, within 20%', async () => {
    await page.getByLabel('API key').fill(node.apiKey);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('#status').filter({ hasText: 'Live.' }).waitFor();

    // Who the load goes to: user-0 on an active PC, user-1 on a phone in the foreground, user-2 on a phone that left
    // with an FCM token stored (pushed through the FCM stand-in: vendor outcome "ok"), user-3 on a phone that left
    // with a token the stand-in says is unregistered (outcome "dead_token"), the rest to nobody (held).
    const pc = await acking({ sub: 'user-0', dev: 'pc', kind: 'pc' });
    pc.send({ type: 'presence', state: 'active' });
    await acking({ sub: 'user-1', dev: 'phone', kind: 'mobile', os: 'ios' });
    const token = rig.newToken();
    const gone = await acking({ sub: 'user-2', dev: 'phone', kind: 'mobile', os: 'android' });
    gone.send({ type: 'register', os: 'android', token });
    await gone.next((f) => f.type === 'registered');
    gone.close();
    await gone.closed;
    const uninstalled = rig.newToken();
    const dead = await acking({ sub: 'user-3', dev: 'phone', kind: 'mobile', os: 'android' });
    dead.send({ type: 'register', os: 'android', token: uninstalled });
    await dead.next((f) => f.type === 'registered');
    dead.close();
    await dead.closed;
    rig.kill(uninstalled);
    for (const user of ['user-2', 'user-3']) {
      await until(async () => (await node.http('GET', `/v1/users/${user}`)).body?.devices?.[0]?.online === false, 5000, `${user} offline`);
    }

    // The load script: RATE messages per second, each one's acceptance time noted.
    const acceptedAt: number[] = [];
    const started = Date.now();
    let n = 0;
    const inflight: Promise<void>[] = [];
    while (Date.now() - started < SECONDS * 1000) {
      const due = started + (n * 1000) / RATE;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const id = `load-${n++}`;
      inflight.push(node.send({ id, to: `user-${n % 7}`, text: 'load' }).then((r) => {
        expect(r.status).toBe(202);
        acceptedAt.push(Date.now());
      }));
    }
    // Read the figure the page shows while the load still runs, with the window it covers.
    const tile = page.locator('#rate-accepted');
    const shown = Number(await tile.getAttribute('data-value'));
    const at = Number(await tile.getAttribute('data-at'));
    const window = Number(await tile.getAttribute('data-window'));
    await Promise.all(inflight);
    await page.screenshot({ path: join(ARTIFACTS, 'load.png'), fullPage: true });

    expect(window).toBeGreaterThanOrEqual(3);
    const inWindow = acceptedAt.filter((t) => t > at - window * 1000 && t <= at).length;
    const expected = inWindow / window;
    expect(expected).toBeGreaterThan(RATE * 0.5); // the script kept up
    expect(Math.abs(shown - expected)).toBeLessThanOrEqual(expected * 0.2);
    expect(await tile.textContent()).toMatch(/^\d+\.\d\/s$/);
    // The tables break it down: routes with reasons, deliveries and acks, vendor outcomes.
    await page.locator('#routes tbody tr').filter({ hasText: /held\s*no_pc/ }).waitFor(); // v1.1: nobody reachable -> held
    await page.locator('#routes tbody tr').filter({ hasText: /pc\s*pc_active/ }).waitFor();
    await page.locator('#routes tbody tr').filter({ hasText: /mobile\s*no_pc/ }).waitFor();
    await page.locator('#deliveries tbody tr').filter({ hasText: /^acked/ }).filter({ hasText: /[1-9]\d*$/ }).waitFor();
    // A push counts as a delivery once the vendor accepted it; the dead token is an outcome, not a delivery.
    await page.locator('#deliveries tbody tr').filter({ hasText: /^fcm/ }).filter({ hasText: /[1-9]\d*$/ }).waitFor();
    await page.locator('#vendors tbody tr').filter({ hasText: /fcm\s*ok/ }).filter({ hasText: /[1-9]\d*$/ }).waitFor();
    await page.locator('#vendors tbody tr').filter({ hasText: /fcm\s*dead_token/ }).filter({ hasText: /[1-9]\d*$/ }).waitFor();
    expect(rig.seen(token).length).toBeGreaterThan(0); // the pushes reached the FCM stand-in
    expect(await page.locator('#sessions').textContent()).toBe('1 / 1');
    expect(await page.locator('#latency-delivery').textContent()).toMatch(/ms \/ .*ms/);
  });

  it('has labelled controls and tables in the accessibility tree', async () => {
    const tree = await page.locator('body').ariaSnapshot();
    for (const expected of ['textbox "API key"', 'button "Connect"', 'button "Disconnect"', 'table "Routing decisions by route and reason"', 'img "Throughput, last 2 minutes']) {
      expect(tree).toContain(expected);
    }
    // Keyboard: while live, Tab from the key field skips the disabled Connect and reaches Disconnect.
    await page.getByLabel('API key').focus();
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.id')).toBe('disconnect');
  });
});
