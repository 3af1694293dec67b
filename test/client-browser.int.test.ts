import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, newPage } from './support/browser.js';
import { NodeProcess } from './support/node-process.js';
import { msgId, uniqueUser, viewUntil } from './support/scenario.js';
import { signToken } from './support/ws-client.js';

/**
 * The compiled clients (dist/clients/*.js) in headless Chromium, loaded as ES modules with no bundler, talking to
 * a real node; the IdleDetector path with the `idle-detection` permission granted through the browser context and
 * the user and screen state driven by DevTools' Emulation.setIdleOverride.
 */

const DIST = fileURLToPath(new URL('../dist/clients/', import.meta.url));
const BROWSER_MODULES = ['client.js', 'pc-presence.js', 'mobile.js', 'adapters/browser.js', 'adapters/electron.js', 'adapters/linux.js'];

/** The page: a plain `<script type="module">` importing every browser module, as an app would. */
const PAGE = `<!doctype html><title>switchboard client</title>
<script type="module">
const names = ${JSON.stringify(BROWSER_MODULES)};
const mods = await Promise.all(names.map((n) => import('/clients/' + n)));
window.sb = Object.fromEntries(names.map((n, i) => [n, mods[i]]));
window.sbReady = true;
</script>`;

/** Serves dist/clients under /clients/ and the page at /, on a loopback origin (a secure context). */
async function serveClients(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    const m = /^\/clients\/([\w/-]+\.js)$/.exec(path);
    if (!m || m[1].includes('..')) return void res.writeHead(404).end();
    try {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(await readFile(DIST + m[1]));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

describe.runIf(hasChromium())('clients in headless Chromium', () => {
  let node: NodeProcess;
  let server: Server;
  let browser: Browser;
  let origin: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    [node, server, browser] = await Promise.all([NodeProcess.start(), serveClients(), launchChromium()]);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);
  afterAll(async () => {
    for (const c of contexts) await c.close();
    await browser?.close();
    server?.close();
    await node?.stop();
    await node?.removeData();
  });

  async function page(permissions: string[] = []): Promise<Page> {
    const p = await newPage(browser, origin + '/', permissions);
    contexts.push(p.context());
    await p.waitForFunction(() => (globalThis as any).sbReady === true);
    return p;
  }

  /** Starts a client (and a presence reporter) in the page; the page keeps what it was shown in `window.shown`. */
  const startPcInPage = (p: Page, token: string) => p.evaluate(async ({ url, token }) => {
    const w = globalThis as any;
    const { SwitchboardClient } = w.sb['client.js'];
    const { PcPresenceReporter } = w.sb['pc-presence.js'];
    const { browserPresenceAdapter } = w.sb['adapters/browser.js'];
    w.shown = [];
    w.client = new SwitchboardClient({ url, token });
    w.client.on('message', (m: { id: string }) => w.shown.push(m.id));
    w.adapter = browserPresenceAdapter();
    w.reporter = new PcPresenceReporter(w.client, [w.adapter]);
    w.client.start();
    await w.reporter.start();
    return w.adapter.signal as string;
  }, { url: node.wsUrl, token });

  it('every browser module loads as an ES module without a bundler', async () => {
    const p = await page();
    const exported = await p.evaluate(() => {
      const sb = (globalThis as any).sb as Record<string, object>;
      return Object.fromEntries(Object.entries(sb).map(([name, mod]) => [name, Object.keys(mod).sort()]));
    });
    expect(Object.keys(exported).sort()).toEqual([...BROWSER_MODULES].sort());
    expect(exported['client.js']).toContain('SwitchboardClient');
    expect(exported['pc-presence.js']).toContain('PcPresenceReporter');
    expect(exported['adapters/browser.js']).toContain('browserPresenceAdapter');
    expect(exported['mobile.js']).toContain('MobileSession');
  });

  it('IdleDetector granted: the page reports active, idle, screen locked and active again; messages arrive once', async () => {
    const user = uniqueUser('web');
    const p = await page(['idle-detection']);
    const cdp = await p.context().newCDPSession(p);
    await cdp.send('Emulation.setIdleOverride', { isUserActive: true, isScreenUnlocked: true });
    const signal = await startPcInPage(p, await signToken(node.jwtSecret, { sub: user, dev: 'browser', kind: 'pc' }));
    expect(signal).toBe('system');
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active from the browser');

    const id = msgId();
    expect((await node.send({ id, to: user, text: 'hello browser' })).status).toBe(202);
    await p.waitForFunction((id) => (globalThis as any).shown.includes(id), id);

    await cdp.send('Emulation.setIdleOverride', { isUserActive: false, isScreenUnlocked: true });
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'idle', 'idle (IdleDetector)');
    await cdp.send('Emulation.setIdleOverride', { isUserActive: false, isScreenUnlocked: false });
    await viewUntil(node, user, (v) => v.pc.reason === 'screen_locked', 'screen locked (IdleDetector)');
    await cdp.send('Emulation.setIdleOverride', { isUserActive: true, isScreenUnlocked: true });
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active again');

    // A dropped connection: the page reconnects and reports its presence again.
    await p.evaluate(() => (globalThis as any).client.reconnect());
    await viewUntil(node, user, (v) => v.pc.state === 'active' && v.pc.sessions === 1, 'active after reconnect');
    const shown = await p.evaluate(() => (globalThis as any).shown as string[]);
    expect(shown).toEqual([id]);
  });

  it('without the permission: falls back to page input and visibility (the weaker signal)', async () => {
    const user = uniqueUser('web');
    const p = await page();
    const signal = await startPcInPage(p, await signToken(node.jwtSecret, { sub: user, dev: 'browser', kind: 'pc' }));
    expect(signal).toBe('page');
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active from page input');
    await p.evaluate(() => (globalThis as any).reporter.setClientLocked(true));
    await viewUntil(node, user, (v) => v.pc.reason === 'client_locked', 'client locked from the page');
  });

  it('page signal: a policy change keeps an away user idle (no input, no active report); real input makes it active', async () => {
    const user = uniqueUser('web');
    const p = await page();
    expect((await node.http('PUT', `/v1/users/${user}/policy`, { mobile: 'when_away', idleAfterSeconds: 5 })).status).toBe(200);
    expect(await startPcInPage(p, await signToken(node.jwtSecret, { sub: user, dev: 'browser', kind: 'pc' }))).toBe('page');
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'idle', 'idle after 5 s without input', 15_000); // the wait must outlast the 5 s threshold itself
    await p.evaluate(() => {
      const w = globalThis as any;
      w.afterPolicy = undefined;
      // What the reporter holds once the policy frame is handled (its adapters' answers come before the next task).
      w.client.on('policy', () => setTimeout(() => { w.afterPolicy = w.reporter.presence; }, 0));
    });
    expect((await node.http('PUT', `/v1/users/${user}/policy`, { mobile: 'when_away', idleAfterSeconds: 30 })).status).toBe(200);
    const after = await p.waitForFunction(() => (globalThis as any).afterPolicy).then((h) => h.jsonValue());
    expect(after).toEqual({ state: 'inactive', reason: 'idle' });
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'idle', 'still idle after the policy change');
    await p.mouse.move(10, 10);
    await p.mouse.move(20, 20);
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active on real input');
  }, 60_000);
});
