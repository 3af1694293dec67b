import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.js';
import { NodeProcess } from './support/node-process.js';
import { until as untilCondition } from './support/ws-client.js';

/**
 * Issue 12, playground: the seed's claims walked by clicking in headless Chromium, against a real node in a child
 * process. A screenshot of each step is kept in test-artifacts/playground/.
 */
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'playground');

describe('playground in a browser', () => {
  let node: NodeProcess;
  let browser: Browser;
  let page: Page;
  /** What the page logged as an error (console, uncaught exceptions) from its first load on. */
  const pageErrors: string[] = [];
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  /** The node's own view of the user, through the operator API (the page never sees this key). */
  const view = async () => (await node.http('GET', '/v1/users/playground')).body;
  const until = (what: string, check: () => Promise<boolean>) => untilCondition(check, 15_000, what);
  const send = async (text: string) => {
    await page.getByLabel('Message to playground').fill(text);
    await page.getByLabel('Message to playground').press('Enter'); // keyboard: Enter submits
    await page.locator('#send-status').filter({ hasText: `Sent "${text}"` }).waitFor();
  };

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    node = await NodeProcess.start();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`${m.text()} ${m.location().url}`); });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${node.url}/playground`);
    await page.locator('body[data-ready="true"]').waitFor();
    await page.locator('#phone-connection').filter({ hasText: 'push token stored' }).waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.stop();
    await node?.removeData();
  });

  it('serves no secret to the page', async () => {
    const html = await page.content();
    const assets = await Promise.all(['playground.js', 'sdk/client.js', 'sdk/pc-presence.js', 'sdk/mobile.js', 'sdk/adapters/browser.js'].map(async (f) => {
      const res = await fetch(`${node.url}/pages/${f}`);
      expect(res.status, f).toBe(200);
      expect(res.headers.get('content-type'), f).toContain('javascript');
      return res.text();
    }));
    for (const text of [html, ...assets]) {
      expect(text).not.toContain(node.apiKey);
      expect(text).not.toContain(node.jwtSecret);
    }
  });

  it('loads without an error in the console (no request the node answers 404, such as a favicon)', () => {
    expect(pageErrors).toEqual([]);
  });

  it('PC active: the PC pane gets the message, the phone does not', async () => {
    await until('both clients at the node', async () => (await view())?.pc?.state === 'active' && (await view())?.devices?.[0]?.online === true);
    await shot('0-connected');
    await send('one: PC active');
    await page.locator('#pc-inbox li').filter({ hasText: 'one: PC active' }).waitFor();
    await page.locator('#trail li').filter({ hasText: /one: PC active.*PC active → delivered to the PC, acked in \d+ ms/ }).waitFor();
    expect(await page.locator('#phone-inbox li').count()).toBe(0);
    await shot('1-pc-active');
  });

  it('screen locked: the phone pane gets it directly', async () => {
    await page.getByRole('button', { name: 'Lock the screen' }).focus();
    await page.keyboard.press('Space'); // keyboard operable
    await page.locator('#pc-presence').filter({ hasText: 'inactive (screen locked) since' }).waitFor();
    await until('the node to see the lock', async () => (await view())?.pc?.reason === 'screen_locked');
    await send('two: screen locked');
    await page.locator('#phone-inbox li').filter({ hasText: 'two: screen locked' }).waitFor();
    await page.locator('#trail li').filter({ hasText: /PC screen locked since \d\d:\d\d:\d\d → phone in foreground → delivered directly, acked in \d+ ms/ }).waitFor();
    expect(await page.locator('#pc-inbox li').filter({ hasText: 'two' }).count()).toBe(0);
    await shot('2-screen-locked');
  });

  it('phone offline: the stand-in tray shows the push the node would have sent', async () => {
    await page.getByRole('button', { name: 'Offline' }).click();
    await until('the node to see the phone go', async () => (await view())?.devices?.[0]?.online === false);
    await send('three: phone offline');
    // No vendor is configured on this node, so the phone is not reachable by push (PROTOCOL section 4): the node
    // falls back to the locked PC, and the page shows the FCM push it would have sent as a stand-in.
    await page.locator('#phone-tray li').filter({ hasText: 'three: phone offline' }).waitFor();
    expect(await page.locator('#phone-tray li').first().textContent()).toContain('FCM push (stand-in: FCM not configured on this node)');
    await page.locator('#trail li').filter({ hasText: /three: phone offline.*PC screen locked since \d\d:\d\d:\d\d → phone offline → FCM not configured here → delivered to the PC instead, acked in \d+ ms/ }).waitFor();
    // The node's own record agrees (newest first): no vendor target, the PC instead.
    const [latest] = (await node.http('GET', '/v1/users/playground/decisions')).body.decisions;
    expect(latest).toMatchObject({ route: 'pc_fallback', reason: 'screen_locked', targets: [{ via: 'pc' }] });
    await page.locator('#pc-inbox li').filter({ hasText: 'three: phone offline' }).waitFor();
    expect(await page.locator('#phone-inbox li').filter({ hasText: 'three' }).count()).toBe(0);
    await shot('3-phone-offline');
  });

  it('locks the client by hand', async () => {
    await page.getByRole('button', { name: 'Unlock' }).click();
    await until('the node to see the PC active', async () => (await view())?.pc?.state === 'active');
    await page.getByRole('button', { name: 'Lock the client' }).click();
    await page.locator('#pc-presence').filter({ hasText: 'inactive (client locked) since' }).waitFor();
    await until('the node to see the client lock', async () => (await view())?.pc?.reason === 'client_locked');
  });

  it('detects idleness from real input, with the threshold from the slider', async () => {
    await page.getByRole('button', { name: 'Unlock' }).click();
    await until('the node to see the PC active again', async () => (await view())?.pc?.state === 'active');
    const slider = page.getByRole('slider', { name: 'Idle after' });
    await slider.focus();
    await page.keyboard.press('Home'); // 5 s, by keyboard
    expect(await page.locator('#pc-idle-value').textContent()).toBe('5 s');
    await page.locator('#pc-presence').filter({ hasText: 'inactive (idle)' }).waitFor({ timeout: 12_000 });
    await until('the node to see the PC idle', async () => (await view())?.pc?.reason === 'idle');
    await shot('4-idle');
    await page.mouse.move(200, 200);
    await page.mouse.move(220, 240);
    await page.locator('#pc-presence').filter({ hasText: /^active$/ }).waitFor();
    await until('the node to see the PC active', async () => (await view())?.pc?.state === 'active');
  });

  it('PC idle: a message typed in the chat-server box goes to the phone (that typing is not the PC user\'s input)', async () => {
    await page.getByRole('button', { name: 'Foreground' }).click();
    await until('the node to see the phone in the foreground', async () => (await view())?.devices?.[0]?.online === true);
    await page.locator('#pc-presence').filter({ hasText: 'inactive (idle)' }).waitFor({ timeout: 12_000 }); // slider at 5 s
    await until('the node to see the PC idle', async () => (await view())?.pc?.reason === 'idle');
    await send('five: PC idle');
    await page.locator('#phone-inbox li').filter({ hasText: 'five: PC idle' }).waitFor();
    await page.locator('#trail li').filter({ hasText: /five: PC idle.*PC idle since \d\d:\d\d:\d\d → phone in foreground → delivered directly/ }).waitFor();
    await page.getByRole('button', { name: 'Send' }).click(); // the mouse on the box's button is no PC input either
    expect(await page.locator('#pc-presence').textContent()).toContain('inactive (idle)');
    expect(await page.locator('#pc-inbox li').filter({ hasText: 'five' }).count()).toBe(0);
  });

  it('has labelled controls in the accessibility tree', async () => {
    const tree = await page.locator('main').ariaSnapshot();
    for (const expected of [
      'textbox "Message to playground"', 'button "Send"', 'button "Lock the screen"', 'button "Lock the client"',
      'button "Unlock"', 'slider "Idle after"', 'combobox "Phone OS"', 'button "Foreground"', 'button "Background"',
      'button "Offline"', 'list "Notification tray"', 'list "Routing decisions, newest first"',
    ]) expect(tree).toContain(expected);
  });
});
