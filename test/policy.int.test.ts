import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { accept, awaitDecision, awaitOutcome, decisions, enc, msgId, Peer, settled, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { apnsRig, fcmRig, hmsRig, webPushRig, type VendorRig } from './support/vendor-rigs.js';
import { signToken, TestClient, until, type Claims } from './support/ws-client.js';
import { startApnsServer, type ApnsServer } from './vendors/apns-server.js';
import { startFcmServer, type FcmServer } from './vendors/fcm-server.js';
import { startHmsServer, type HmsServer } from './vendors/hms-server.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

/**
 * Issue 10 parts 2-5 end to end on a real embedded node (child process), real WebSocket clients and the vendor
 * stand-ins: the policy endpoints and their validation, each policy mode's routing, quiet hours as the vendors
 * receive them, `idleAfterMs` in welcome, durability across a restart, batch sends, lasting history, bot sessions.
 */

let node: NodeProcess;
let apns: ApnsServer;
let fcm: FcmServer;
let hms: HmsServer;
let webpush: WebPushServer;
let rigs: Record<'apns' | 'fcm' | 'hms' | 'webpush', VendorRig>;

beforeAll(async () => {
  [apns, fcm, hms, webpush] = await Promise.all([startApnsServer(), startFcmServer({ tls: true }), startHmsServer({ tls: true }), startWebPushServer()]);
  rigs = { apns: apnsRig(apns), fcm: fcmRig(fcm), hms: hmsRig(hms), webpush: webPushRig(webpush) };
  node = await startNode();
}, 30_000);

afterAll(async () => {
  await node?.stop();
  await node?.removeData();
  await Promise.all([apns, fcm, hms, webpush].map((s) => s?.close()));
});

function startNode(dataDir?: string): Promise<NodeProcess> {
  return NodeProcess.start({
    ...(dataDir ? { dataDir, apiKey: node.apiKey, jwtSecret: node.jwtSecret } : {}),
    env: {
      NODE_EXTRA_CA_CERTS: apns.caFile,
      SWITCHBOARD_PASSIVATE_AFTER_MS: '200',
      SWITCHBOARD_APNS_ENDPOINT: apns.origin, SWITCHBOARD_APNS_KEY_FILE: apns.keyFile, SWITCHBOARD_APNS_KEY_ID: apns.keyId,
      SWITCHBOARD_APNS_TEAM_ID: apns.teamId, SWITCHBOARD_APNS_TOPIC: apns.topic,
      SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: fcm.serviceAccountFile, SWITCHBOARD_FCM_ENDPOINT: fcm.origin,
      SWITCHBOARD_HMS_APP_ID: hms.creds.appId, SWITCHBOARD_HMS_CLIENT_ID: hms.creds.clientId, SWITCHBOARD_HMS_CLIENT_SECRET: hms.creds.clientSecret,
      SWITCHBOARD_HMS_AUTH_ENDPOINT: hms.creds.authEndpoint, SWITCHBOARD_HMS_PUSH_ENDPOINT: hms.creds.pushEndpoint,
      SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: webpush.creds.vapidPublicKey, SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: webpush.creds.vapidPrivateKey,
      SWITCHBOARD_WEBPUSH_SUBJECT: webpush.creds.subject,
      // The Web Push stand-in listens on loopback: an explicit host list is taken as given (section 5, issue 9).
      SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: '127.0.0.1',
    },
  });
}

const putPolicy = (user: string, body: unknown) => node.http('PUT', `/v1/users/${enc(user)}/policy`, body);

async function withDevice(user: string, device: string, r: VendorRig): Promise<string> {
  const token = r.newToken();
  const res = await node.http('PUT', `/v1/users/${enc(user)}/devices/${enc(device)}`, { os: r.os, token });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return token;
}

/** "HH:MM" in UTC, `minutes` from now. */
function utcClock(minutes: number): string {
  return new Date(Date.now() + minutes * 60_000).toISOString().slice(11, 16);
}

/** Says hello as a PC (or phone) of `user` and returns the welcome frame. */
async function welcome(user: string, kind: 'pc' | 'mobile' = 'pc'): Promise<any> {
  const c = await TestClient.connect(node.wsUrl);
  try {
    c.send({ type: 'hello', token: await signToken(node.jwtSecret, { sub: user, dev: kind, kind, ...(kind === 'mobile' ? { os: 'android' as const } : {}) }) });
    return await c.next((f) => f.type === 'welcome');
  } finally {
    c.close();
  }
}

async function activePc(user: string, extra: Partial<Claims> & { bot?: boolean } = {}): Promise<Peer> {
  const pc = await Peer.open(node, { sub: user, dev: extra.dev ?? 'pc', kind: 'pc', ...(extra.bot ? { bot: true } : {}) } as Claims);
  pc.send({ type: 'presence', state: 'active' });
  return pc;
}

describe('policy endpoints (section 3)', () => {
  it('GET answers the default until a PUT; PUT replaces the whole policy and shows in GET /v1/users/{u}', async () => {
    const user = uniqueUser('pol');
    expect(await node.http('GET', `/v1/users/${enc(user)}/policy`)).toMatchObject({ status: 200, body: { mobile: 'when_away' } });
    const full = { mobile: 'always', idleAfterSeconds: 120, pushDelaySeconds: 5, quietHours: { start: '22:00', end: '07:00', tz: 'Europe/Berlin' } };
    expect(await putPolicy(user, full)).toMatchObject({ status: 200, body: full });
    expect((await node.http('GET', `/v1/users/${enc(user)}/policy`)).body).toEqual(full);
    await until(async () => JSON.stringify((await userView(node, user) as any).policy) === JSON.stringify(full), 5000, 'policy in the user view');
    expect(await putPolicy(user, { mobile: 'never' })).toMatchObject({ status: 200, body: { mobile: 'never' } });
    expect((await node.http('GET', `/v1/users/${enc(user)}/policy`)).body).toEqual({ mobile: 'never' });
  });

  it.each([
    [{ mobile: 'sometimes' }, 'mobile'],
    [{ idleAfterSeconds: -5 }, 'idleAfterSeconds'],
    [{ pushDelaySeconds: 'soon' }, 'pushDelaySeconds'],
    [{ quietHours: { start: '25:00', end: '07:00', tz: 'UTC' } }, 'quietHours.start'],
    [{ quietHours: { start: '22:00', end: '07:00', tz: 'Europe/Atlantis' } }, 'quietHours.tz'],
    [{ quiet: true }, 'quiet'],
  ])('PUT %j -> 400 invalid_field naming %s, nothing stored', async (body, field) => {
    const user = uniqueUser('bad');
    const res = await putPolicy(user, body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_field');
    expect(res.body.error.message).toContain(field);
    expect((await node.http('GET', `/v1/users/${enc(user)}/policy`)).body).toEqual({ mobile: 'when_away' });
  });

  it('welcome carries idleAfterMs: 60000 by default, the policy value once set', async () => {
    const user = uniqueUser('idle');
    expect((await welcome(user)).idleAfterMs).toBe(60_000);
    await putPolicy(user, { mobile: 'when_away', idleAfterSeconds: 300 });
    expect(await welcome(user)).toMatchObject({ type: 'welcome', user, kind: 'pc', idleAfterMs: 300_000 });
    expect((await welcome(user, 'mobile')).idleAfterMs).toBe(300_000);
  });
});

describe('policy modes on real sessions (section 4)', () => {
  it('always: the active PC gets it and the offline iPhone gets an APNs push (policy_always)', async () => {
    const user = uniqueUser('always');
    const token = await withDevice(user, 'iphone', rigs.apns);
    await putPolicy(user, { mobile: 'always' });
    const pc = await activePc(user);
    try {
      await viewUntil(node, user, (v) => v.pc.state === 'active', 'PC active');
      const id = msgId('always');
      await accept(node, { id, to: user, title: 'Bob', text: 'ping' });
      await pc.message(id);
      expect((await awaitOutcome(node, user, id, 'iphone')).outcome).toBe('ok');
      const d = await awaitDecision(node, user, id, settled);
      expect(d).toMatchObject({ route: 'pc', reason: 'policy_always' });
      expect(d.targets.map((t) => `${t.device}:${t.via}:${t.outcome}`)).toEqual(['pc:pc:acked', 'iphone:apns:ok']);
      expect(rigs.apns.seen(token).map((p) => p.messageId)).toEqual([id]);
    } finally {
      pc.close();
    }
  });

  it('when_away (default) with the same devices: PC only, no push', async () => {
    const user = uniqueUser('away');
    const token = await withDevice(user, 'iphone', rigs.apns);
    const pc = await activePc(user);
    try {
      await viewUntil(node, user, (v) => v.pc.state === 'active', 'PC active');
      const id = msgId('away');
      await accept(node, { id, to: user, text: 'ping' });
      await pc.message(id);
      expect(await awaitDecision(node, user, id, settled)).toMatchObject({ route: 'pc', reason: 'pc_active' });
      expect(rigs.apns.seen(token)).toEqual([]);
    } finally {
      pc.close();
    }
  });

  it('never: an idle PC and an offline phone -> no vendor push, the PC gets it (pc_fallback, policy_never); a foreground app still does', async () => {
    const user = uniqueUser('never');
    const token = await withDevice(user, 'pixel', rigs.fcm);
    await putPolicy(user, { mobile: 'never' });
    const pc = await Peer.open(node, { sub: user, dev: 'pc', kind: 'pc' });
    try {
      pc.send({ type: 'presence', state: 'inactive', reason: 'idle' });
      await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.sessions === 1, 'PC idle');
      const m1 = msgId('never');
      await accept(node, { id: m1, to: user, text: 'one' });
      await pc.message(m1);
      expect(await awaitDecision(node, user, m1, settled)).toMatchObject({ route: 'pc_fallback', reason: 'policy_never', targets: [{ device: 'pc', via: 'pc', outcome: 'acked' }] });
      const tablet = await Peer.open(node, { sub: user, dev: 'tablet', kind: 'mobile', os: 'android' });
      try {
        const m2 = msgId('never');
        await accept(node, { id: m2, to: user, text: 'two' });
        await tablet.message(m2);
        expect(await awaitDecision(node, user, m2, settled)).toMatchObject({ route: 'mobile', reason: 'policy_never', targets: [{ device: 'tablet', via: 'mobile', outcome: 'acked' }] });
      } finally {
        tablet.close();
      }
      expect(rigs.fcm.seen(token)).toEqual([]);
    } finally {
      pc.close();
    }
  });

  it('pushDelaySeconds: the push waits, and a PC turning active meanwhile cancels it (section 4, push delay)', async () => {
    const user = uniqueUser('delay');
    const token = await withDevice(user, 'pixel', rigs.fcm);
    await putPolicy(user, { mobile: 'when_away', pushDelaySeconds: 30 });
    const id = msgId('delay');
    await accept(node, { id, to: user, text: 'later' });
    await awaitDecision(node, user, id);
    const pc = await activePc(user);
    try {
      await pc.message(id);
      const t = await awaitOutcome(node, user, id, 'pixel');
      expect(t).toMatchObject({ via: 'fcm', outcome: 'cancelled', detail: 'pc' });
      expect(rigs.fcm.seen(token)).toEqual([]);
    } finally {
      pc.close();
    }
  });
});

describe('quiet hours at the vendors (section 4; APNs, FCM, Push Kit, Web Push documentation)', () => {
  it('inside the window every vendor push is silent; an urgent one is not', async () => {
    const user = uniqueUser('quiet');
    const tokens = {
      apns: await withDevice(user, 'iphone', rigs.apns),
      fcm: await withDevice(user, 'pixel', rigs.fcm),
      hms: await withDevice(user, 'mate', rigs.hms),
      webpush: await withDevice(user, 'browser', rigs.webpush),
    };
    await putPolicy(user, { mobile: 'when_away', quietHours: { start: utcClock(-60), end: utcClock(60), tz: 'UTC' } });
    const quiet = msgId('quiet');
    await accept(node, { id: quiet, to: user, title: 'Night', text: 'shh' });
    const d = await awaitDecision(node, user, quiet, settled, 15_000);
    expect(d.reason).toBe('quiet_hours');
    expect(d.targets.map((t) => `${t.device}:${t.via}:${t.outcome}:${(t as { silent?: boolean }).silent}`).sort())
      .toEqual(['browser:webpush:ok:true', 'iphone:apns:ok:true', 'mate:hms:ok:true', 'pixel:fcm:ok:true']);

    const urgent = msgId('urgent');
    await accept(node, { id: urgent, to: user, title: 'Wake up', text: 'now', urgent: true });
    expect((await awaitDecision(node, user, urgent, settled, 15_000)).reason).toBe('no_pc');

    const seen = (v: keyof typeof tokens, id: string) => rigs[v].seen(tokens[v]).find((p) => p.messageId === id)!.body;
    // APNs: interruption-level passive and no sound key (Apple, Generating a remote notification).
    // Both carry the unread count as the badge (section 4, read sync).
    expect(seen('apns', quiet).aps).toEqual({ alert: { title: 'Night', body: 'shh' }, badge: expect.any(Number), 'interruption-level': 'passive' });
    expect(seen('apns', urgent).aps).toEqual({ alert: { title: 'Wake up', body: 'now' }, badge: expect.any(Number) });
    // FCM: android.notification.notification_priority PRIORITY_MIN, no sound (FCM v1 AndroidNotification); the badge
    // as notification_count.
    expect(seen('fcm', quiet).message.android.notification).toEqual({ notification_priority: 'PRIORITY_MIN', default_sound: false, notification_count: expect.any(Number) });
    expect(seen('fcm', urgent).message.android.notification).toEqual({ notification_count: expect.any(Number) });
    // Push Kit: android.notification.importance LOW.
    expect(seen('hms', quiet).message.android.notification.importance).toBe('LOW');
    expect(seen('hms', urgent).message.android.notification.importance).toBeUndefined();
    // Web Push: the payload tells the service worker to show it silently.
    expect(seen('webpush', quiet).silent).toBe(true);
    expect(seen('webpush', urgent).silent).toBeUndefined();
  });

  it('outside the window pushes are normal', async () => {
    const user = uniqueUser('daytime');
    const token = await withDevice(user, 'iphone', rigs.apns);
    await putPolicy(user, { mobile: 'when_away', quietHours: { start: utcClock(120), end: utcClock(180), tz: 'UTC' } });
    const id = msgId('day');
    await accept(node, { id, to: user, text: 'hi' });
    expect(await awaitDecision(node, user, id, settled)).toMatchObject({ reason: 'no_pc', targets: [{ device: 'iphone', via: 'apns', outcome: 'ok' }] });
    expect(rigs.apns.seen(token)[0].body.aps['interruption-level']).toBeUndefined();
  });
});

describe('bots and bridges (issue 10 part 5)', () => {
  it('a PC session with "bot": true reporting active does not stop the phone push', async () => {
    const user = uniqueUser('bot');
    const token = await withDevice(user, 'pixel', rigs.fcm);
    const bridge = await activePc(user, { dev: 'bridge', bot: true });
    try {
      await viewUntil(node, user, (v) => v.pc.sessions === 1, 'bridge connected');
      expect((await userView(node, user)).pc).toEqual({ state: 'inactive', reason: 'no_pc', sessions: 1 });
      const id = msgId('bot');
      await accept(node, { id, to: user, text: 'for the human' });
      expect(await awaitDecision(node, user, id, settled)).toMatchObject({ route: 'mobile', reason: 'no_pc', targets: [{ device: 'pixel', via: 'fcm', outcome: 'ok' }] });
      expect(rigs.fcm.seen(token).map((p) => p.messageId)).toEqual([id]);
      expect(bridge.count(id)).toBe(0);
    } finally {
      bridge.close();
    }
  });
});

describe('batch sends (section 3)', () => {
  it('answers one result per message in order: accepted, refused alone, duplicate; the accepted ones are routed', async () => {
    const user = uniqueUser('batch');
    const pc = await activePc(user);
    try {
      await viewUntil(node, user, (v) => v.pc.state === 'active', 'PC active');
      const [a, b] = [msgId('b'), msgId('b')];
      const res = await node.http('POST', '/v1/messages/batch', {
        messages: [{ id: a, to: user, text: 'one' }, { id: 'bad', to: user, priority: 'urgent' }, { to: user }, { id: b, to: user, text: 'two' }, { id: a, to: user, text: 'one again' }],
      });
      expect(res.status).toBe(200);
      expect(res.body.results).toEqual([
        { id: a, status: 'accepted' },
        { id: 'bad', error: { code: 'invalid_request', message: expect.stringContaining('priority') } },
        { error: { code: 'invalid_request', message: expect.stringContaining('id') } },
        { id: b, status: 'accepted' },
        { id: a, status: 'duplicate' },
      ]);
      await pc.message(a);
      await pc.message(b);
      await until(() => pc.count(a) === 1 && pc.count(b) === 1);
    } finally {
      pc.close();
    }
  });

  it('takes 500 messages in one request and refuses 0 or 501 as a whole (400)', async () => {
    const user = uniqueUser('bulk');
    const messages = Array.from({ length: 500 }, (_, i) => ({ id: `${user}-${i}`, to: user, text: `n${i}` }));
    const res = await node.http('POST', '/v1/messages/batch', { messages });
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(500);
    expect(res.body.results.every((r: { status?: string }, i: number) => r.status === 'accepted' && (r as { id: string }).id === `${user}-${i}`)).toBe(true);
    for (const n of [0, 501]) {
      const bad = await node.http('POST', '/v1/messages/batch', { messages: Array.from({ length: n }, (_, i) => ({ id: `x${i}`, to: user })) });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain('messages');
    }
  });
});

describe('lasting history (section 3, issue 10 part 4)', () => {
  it('keeps the last 100 decisions after the user actor passivated', async () => {
    const user = uniqueUser('hist');
    const res = await node.http('POST', '/v1/messages/batch', { messages: Array.from({ length: 120 }, (_, i) => ({ id: `${user}-${String(i).padStart(3, '0')}`, to: user })) });
    expect(res.status).toBe(200);
    await until(async () => (await decisions(node, user)).length === 100, 10_000, '100 decisions');
    // SWITCHBOARD_PASSIVATE_AFTER_MS is 200: wait until the actor is gone, then read again.
    await until(async () => (await node.http('GET', '/metrics')).body.includes('switchboard_live_actors 0'), 10_000, 'no live actor');
    const kept = await decisions(node, user, 100);
    expect(kept).toHaveLength(100);
    expect(kept[0].id).toBe(`${user}-119`);
    expect(kept[99].id).toBe(`${user}-020`);
  });
});

describe('durability (section 3: the policy is durable)', () => {
  it('a policy survives a restart and still reaches welcome', async () => {
    const user = uniqueUser('durable');
    await putPolicy(user, { mobile: 'never', idleAfterSeconds: 45 });
    await node.stop();
    node = await startNode(node.dataDir);
    expect((await node.http('GET', `/v1/users/${enc(user)}/policy`)).body).toEqual({ mobile: 'never', idleAfterSeconds: 45 });
    expect((await welcome(user)).idleAfterMs).toBe(45_000);
  }, 30_000);
});
