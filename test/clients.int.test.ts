import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Disconnect } from '../clients/client.js';
import type { ClientError } from '../clients/close-codes.js';
import { MobileSession, type AppLifecycle, type PushTokenSource } from '../clients/mobile.js';
import { PcPresenceReporter, type PresenceAdapter, type PresenceUpdate } from '../clients/pc-presence.js';
import type { MobileState } from '../clients/wire.js';
import { NodeProcess } from './support/node-process.js';
import { msgId, uniqueUser, viewUntil } from './support/scenario.js';
import { signToken, until, type Claims } from './support/ws-client.js';

/**
 * The client core, PC presence and the mobile core against a real node (dist/bin/switchboard.js in a child process)
 * over real WebSockets, with `ws` as the injected WebSocket (Node 20 has no global one).
 */

let node: NodeProcess;
const running: SwitchboardClient[] = [];

beforeAll(async () => {
  node = await NodeProcess.start();
});
afterAll(async () => {
  for (const c of running) c.stop();
  await node?.stop();
  await node?.removeData();
});

/** A client core with recorders for what the app sees. */
function open(claims: Claims | (() => Promise<string>)) {
  const token = typeof claims === 'function' ? claims : () => signToken(node.jwtSecret, claims);
  const client = new SwitchboardClient({ url: node.wsUrl, token, WebSocket, backoff: { initialMs: 100, maxMs: 1000 } });
  const shown: string[] = [];
  const disconnects: Disconnect[] = [];
  let stopped: ClientError | undefined | null = null;
  let welcomes = 0;
  client.on('message', (m) => shown.push(m.id));
  client.on('disconnect', (d) => disconnects.push(d));
  client.on('stopped', (e) => { stopped = e; });
  client.on('welcome', () => { welcomes++; });
  running.push(client);
  client.start();
  return { client, shown, disconnects, stopped: () => stopped, welcomes: () => welcomes };
}

/** A presence adapter the test drives (the platform adapters have their own tests against fakes). */
class ManualAdapter implements PresenceAdapter {
  readonly signal = 'system' as const;
  update?: (u: PresenceUpdate) => void;
  start(update: (u: PresenceUpdate) => void) {
    this.update = update;
  }
  stop() {}
}

const send = async (to: string, id: string) => {
  const res = await node.send({ id, to, text: id });
  expect(res.status).toBe(202);
};

describe('PC client and presence (claim 4) against a real node', () => {
  it('welcome carries idleAfterMs; a PC that has not reported is "unreported"; the reporter makes it active, locked, active', async () => {
    const user = uniqueUser('pc');
    const pc = open({ sub: user, dev: 'desk', kind: 'pc' });
    await until(() => pc.client.state === 'open', 5000, 'welcome');
    expect(pc.client.welcome).toMatchObject({ user, device: 'desk', kind: 'pc', idleAfterMs: 60_000 });
    expect(pc.client.welcome!.heartbeatMs).toBeGreaterThan(0);
    await viewUntil(node, user, (v) => v.pc.sessions === 1 && v.pc.reason === 'unreported', 'unreported PC');

    const adapter = new ManualAdapter();
    const reporter = new PcPresenceReporter(pc.client, [adapter]);
    await reporter.start();
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active');
    reporter.setClientLocked(true);
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'client_locked', 'client locked');
    reporter.setClientLocked(false);
    adapter.update!({ screenLocked: true });
    await viewUntil(node, user, (v) => v.pc.reason === 'screen_locked', 'screen locked');
    adapter.update!({ screenLocked: false, idleMs: 0 });
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active again');
    // A reconnect starts a new, unreported session; the client resends the current presence after welcome.
    pc.client.reconnect();
    await until(() => pc.welcomes() === 2, 5000, 'second welcome');
    await viewUntil(node, user, (v) => v.pc.state === 'active' && v.pc.sessions === 1, 'active after reconnect');
    reporter.stop();
    pc.client.stop();
  });

  it('the idle threshold follows the user\'s policy (welcome.idleAfterMs): no input for 5 s -> idle', async () => {
    const user = uniqueUser('policy');
    expect((await node.http('PUT', `/v1/users/${user}/policy`, { mobile: 'when_away', idleAfterSeconds: 5 })).status).toBe(200);
    const pc = open({ sub: user, dev: 'desk', kind: 'pc' });
    await until(() => pc.client.state === 'open', 5000, 'welcome');
    expect(pc.client.welcome!.idleAfterMs).toBe(5000);
    const adapter = new ManualAdapter();
    const reporter = new PcPresenceReporter(pc.client, [adapter], { tickMs: 200 });
    await reporter.start();
    adapter.update!({ idleMs: 0 });
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active');
    const since = Date.now();
    await viewUntil(node, user, (v) => v.pc.reason === 'idle', 'idle after 5 s', 10_000);
    expect(Date.now() - since).toBeGreaterThanOrEqual(4000);
    adapter.update!({ idleMs: 0 });
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'active on input');
    reporter.stop();
    pc.client.stop();
  });

  it('reconnects while messages flow: none lost, none shown twice', async () => {
    const user = uniqueUser('flow');
    const pc = open({ sub: user, dev: 'desk', kind: 'pc' });
    const phone = open({ sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
    const reporter = new PcPresenceReporter(pc.client, [new ManualAdapter()]);
    await reporter.start();
    await viewUntil(node, user, (v) => v.pc.state === 'active' && v.devices.some((d) => d.online), 'pc active, phone online');

    const ids = Array.from({ length: 150 }, (_, i) => msgId(`f${i}`));
    for (let i = 0; i < ids.length; i++) {
      await send(user, ids[i]);
      if (i % 30 === 15) pc.client.reconnect(); // drop the PC's socket mid-stream
    }
    // The PC gets what was routed while it was active; what its dropped sessions never acked, or what came while
    // it was reconnecting (no presence yet), goes to the phone (section 4). Every message reaches the user.
    await until(() => ids.every((id) => pc.shown.includes(id) || phone.shown.includes(id)), 20_000, 'every message shown');
    expect(new Set(pc.shown).size).toBe(pc.shown.length);
    expect(new Set(phone.shown).size).toBe(phone.shown.length);
    expect(pc.welcomes()).toBeGreaterThanOrEqual(5);
    expect(pc.shown.length).toBeGreaterThan(0);
    reporter.stop();
  });

  it('a node restart: the client comes back by itself and the same id is never shown twice', async () => {
    const restartable = await NodeProcess.start();
    try {
      const user = uniqueUser('restart');
      const client = new SwitchboardClient({ url: restartable.wsUrl, token: () => signToken(restartable.jwtSecret, { sub: user, dev: 'desk', kind: 'pc' }), WebSocket, backoff: { initialMs: 100, maxMs: 500 } });
      const shown: string[] = [];
      let welcomes = 0;
      client.on('message', (m) => shown.push(m.id));
      client.on('welcome', () => welcomes++);
      client.setPresence({ state: 'active' });
      client.start();
      await until(() => welcomes === 1, 5000, 'welcome');
      await viewUntil(restartable, user, (v) => v.pc.state === 'active', 'active');
      const before = msgId('before');
      expect((await restartable.send({ id: before, to: user, text: 'x' })).status).toBe(202);
      await until(() => shown.includes(before), 5000, 'first message');
      await restartable.kill('SIGKILL');
      const again = await NodeProcess.start({ dataDir: restartable.dataDir, apiKey: restartable.apiKey, jwtSecret: restartable.jwtSecret, env: { SWITCHBOARD_PORT: String(restartable.port) } });
      try {
        await until(() => welcomes === 2, 10_000, 'welcome after restart');
        await viewUntil(again, user, (v) => v.pc.state === 'active', 'active after restart');
        const after = msgId('after');
        expect((await again.send({ id: after, to: user, text: 'y' })).status).toBe(202);
        await until(() => shown.includes(after), 5000, 'message after restart');
        expect(shown.filter((id) => id === before)).toHaveLength(1);
      } finally {
        client.stop();
        await again.stop();
      }
    } finally {
      await restartable.stop();
      await restartable.removeData();
    }
  });
});

describe('close codes end to end', () => {
  it('4409: the replaced client stops and does not reconnect; the new one keeps working', async () => {
    const user = uniqueUser('dup');
    const first = open({ sub: user, dev: 'desk', kind: 'pc' });
    await until(() => first.client.state === 'open');
    const second = open({ sub: user, dev: 'desk', kind: 'pc' });
    await until(() => first.stopped() !== null, 5000, 'first stopped');
    expect(first.stopped()).toMatchObject({ code: 'replaced', closeCode: 4409 });
    second.client.setPresence({ state: 'active' });
    await viewUntil(node, user, (v) => v.pc.state === 'active' && v.pc.sessions === 1, 'second active');
    const id = msgId();
    await send(user, id);
    await until(() => second.shown.includes(id));
    expect(first.client.state).toBe('stopped');
    expect(first.welcomes()).toBe(1);
  });

  it('4401 says why (expired, bad signature, missing exp, wrong algorithm); a token function gets a new token', async () => {
    const user = uniqueUser('auth');
    const claims: Claims = { sub: user, dev: 'desk', kind: 'pc' };
    const key = new TextEncoder().encode(node.jwtSecret);
    const noExp = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(key);
    const hs512 = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS512' }).setExpirationTime('1h').sign(key);
    const forged = await signToken('another-secret-0123456789abcdef', claims);
    const tokens = [await signToken(node.jwtSecret, claims, -60), forged, noExp, hs512, await signToken(node.jwtSecret, claims)];
    const c = open(async () => tokens.shift()!);
    await until(() => c.client.state === 'open', 10_000, 'welcome with the fresh token');
    expect(c.disconnects.map((d) => [d.error.code, d.error.closeCode, d.error.reason])).toEqual([
      ['unauthenticated', 4401, 'expired'],
      ['unauthenticated', 4401, 'bad signature'],
      ['unauthenticated', 4401, 'missing exp'],
      ['unauthenticated', 4401, 'wrong algorithm'],
    ]);
    for (const d of c.disconnects) expect(d.error.message).not.toContain(node.jwtSecret);
    c.client.stop();
  });
});

describe('mobile client core against a real node', () => {
  class Lifecycle implements AppLifecycle {
    state: MobileState = 'foreground';
    private listeners = new Set<(s: MobileState) => void>();
    current() { return this.state; }
    onChange(l: (s: MobileState) => void) { this.listeners.add(l); return () => this.listeners.delete(l); }
    set(s: MobileState) { this.state = s; for (const l of this.listeners) l(s); }
  }
  class Tokens implements PushTokenSource {
    readonly os = 'android' as const;
    private listener?: (t: string) => void;
    constructor(public token: string) {}
    async getToken() { return this.token; }
    onTokenRefresh(l: (t: string) => void) { this.listener = l; return () => { this.listener = undefined; }; }
    refresh(t: string) { this.token = t; this.listener?.(t); }
  }

  it('registers the token at launch and on refresh, follows the lifecycle, unregisters on log-out', async () => {
    const user = uniqueUser('mob');
    const c = open({ sub: user, dev: 'pixel', kind: 'mobile', os: 'android' });
    let registered = 0;
    c.client.on('registered', () => registered++);
    const lifecycle = new Lifecycle();
    const tokens = new Tokens('fcm-token-1');
    const session = new MobileSession(c.client, lifecycle, tokens);
    await session.start();
    await until(() => registered >= 1, 5000, 'registered');
    expect(registered).toBe(1);
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && d.hasToken && d.online), 'token stored, online');
    lifecycle.set('background');
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && !d.online), 'background');
    lifecycle.set('foreground');
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && d.online), 'foreground');
    tokens.refresh('fcm-token-2');
    await until(() => registered >= 2, 5000, 'registered again');
    expect(registered).toBe(2);

    // Log-out: `unregister` (v1.1 section 2) removes the device's token, answered `unregistered`.
    const out = await session.logOut(5000).then(() => 'unregistered', (e: Error) => e.message);
    expect(out).toBe('unregistered');
    expect(c.client.state).toBe('stopped');
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && !d.hasToken), 'token removed');
  });

  it('log-out started offline at launch, then the network returns: only the unregister is sent and the token is gone', async () => {
    const user = uniqueUser('mob');
    // An earlier launch stored the token.
    expect((await node.http('PUT', `/v1/users/${user}/devices/pixel`, { os: 'android', token: 'fcm-token-old' })).status).toBe(200);
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && d.hasToken), 'token stored');
    // Offline: the connection waits for the token function until the network is back.
    let online!: () => void;
    const networkBack = new Promise<void>((r) => { online = r; });
    const sent: string[] = [];
    class RecordingWebSocket extends WebSocket {
      override send(data: string) { sent.push((JSON.parse(data) as { type: string }).type); super.send(data); }
    }
    const claims: Claims = { sub: user, dev: 'pixel', kind: 'mobile', os: 'android' };
    const client = new SwitchboardClient({ url: node.wsUrl, token: async () => { await networkBack; return signToken(node.jwtSecret, claims); }, WebSocket: RecordingWebSocket });
    running.push(client);
    client.start();
    const session = new MobileSession(client, new Lifecycle(), new Tokens('fcm-token-old'));
    await session.start(); // the register waits for a welcome
    const out = session.logOut(10_000).then(() => 'unregistered', (e: Error) => e.message);
    online();
    expect(await out).toBe('unregistered');
    expect(sent).not.toContain('register');
    expect(sent).toContain('unregister');
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'pixel' && !d.hasToken), 'token removed');
  });
});
