import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { accept, awaitDecision, awaitOutcome, enc, msgId, uniqueUser, viewUntil } from './support/scenario.js';
import { apnsRig, fcmRig, hmsRig, webPushRig, type MobileOs, type VendorRig } from './support/vendor-rigs.js';
import { startApnsServer, type ApnsServer } from './vendors/apns-server.js';
import { startFcmServer, type FcmServer } from './vendors/fcm-server.js';
import { startHmsServer, type HmsServer } from './vendors/hms-server.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

/**
 * Issue 3 "Tests": one real node (child process) configured for all four vendors against the local stand-ins,
 * over TLS verified through NODE_EXTRA_CA_CERTS (PROTOCOL.md section 1). Users are offline (no session) with
 * tokens registered over HTTP, so every message goes to the vendor (section 4); each case checks what the
 * vendor received (section 5) and the outcome the node reports in GET /v1/users/{u}/decisions.
 */

const MAX_ATTEMPTS = 3;
/** A retried push waits for Retry-After (1 s) or backoff; a few seconds cover every case. */
const RETRY_TIMEOUT_MS = 20_000;

let node: NodeProcess;
let apns: ApnsServer;
let fcm: FcmServer;
let hms: HmsServer;
let webpush: WebPushServer;
// The "beta" app: its own APNs topic and key, FCM project, Push Kit app and VAPID keys, each on its own stand-in.
let apnsBeta: ApnsServer;
let fcmBeta: FcmServer;
let hmsBeta: HmsServer;
let webpushBeta: WebPushServer;
let rigs: VendorRig[];
let betaRigs: Map<string, VendorRig>;
let appsDir: string;

beforeAll(async () => {
  [apns, fcm, hms, webpush, apnsBeta, fcmBeta, hmsBeta, webpushBeta] = await Promise.all([
    startApnsServer(),
    startFcmServer({ tls: true }),
    startHmsServer({ tls: true }),
    startWebPushServer(),
    startApnsServer({ topic: 'com.example.switchboard.beta', keyId: 'BETAKEY678', teamId: 'BETATEAM90' }),
    startFcmServer({ tls: true, projectId: 'switchboard-beta' }),
    startHmsServer({ tls: true, appId: '104000002' }),
    startWebPushServer(),
  ]);
  rigs = [apnsRig(apns), fcmRig(fcm), hmsRig(hms), webPushRig(webpush)];
  betaRigs = new Map([apnsRig(apnsBeta), fcmRig(fcmBeta), hmsRig(hmsBeta), webPushRig(webpushBeta)].map((r) => [r.vendor, r]));
  appsDir = mkdtempSync(join(tmpdir(), 'switchboard-apps-'));
  const appsFile = join(appsDir, 'apps.json');
  writeFileSync(appsFile, JSON.stringify({
    apps: {
      beta: {
        apns: { endpoint: apnsBeta.origin, keyFile: apnsBeta.keyFile, keyId: apnsBeta.keyId, teamId: apnsBeta.teamId, topic: apnsBeta.topic },
        fcm: { serviceAccountFile: fcmBeta.serviceAccountFile, endpoint: fcmBeta.origin },
        hms: hmsBeta.creds,
        webpush: webpushBeta.creds,
      },
      // "fcmonly" is a configured app with FCM only: APNs is off for it.
      fcmonly: { fcm: { serviceAccountFile: fcmBeta.serviceAccountFile, endpoint: fcmBeta.origin } },
    },
  }));
  node = await NodeProcess.start({
    env: {
      // Every stand-in's certificate is signed by the one cached test CA.
      NODE_EXTRA_CA_CERTS: apns.caFile,
      SWITCHBOARD_PUSH_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      SWITCHBOARD_APNS_ENDPOINT: apns.origin,
      SWITCHBOARD_APNS_KEY_FILE: apns.keyFile,
      SWITCHBOARD_APNS_KEY_ID: apns.keyId,
      SWITCHBOARD_APNS_TEAM_ID: apns.teamId,
      SWITCHBOARD_APNS_TOPIC: apns.topic,
      SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: fcm.serviceAccountFile,
      SWITCHBOARD_FCM_ENDPOINT: fcm.origin,
      SWITCHBOARD_HMS_APP_ID: hms.creds.appId,
      SWITCHBOARD_HMS_CLIENT_ID: hms.creds.clientId,
      SWITCHBOARD_HMS_CLIENT_SECRET: hms.creds.clientSecret,
      SWITCHBOARD_HMS_AUTH_ENDPOINT: hms.creds.authEndpoint,
      SWITCHBOARD_HMS_PUSH_ENDPOINT: hms.creds.pushEndpoint,
      // The Web Push stand-ins listen on loopback: allowed by address, as an operator would list a private push service.
      SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: '127.0.0.1',
      SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: webpush.creds.vapidPublicKey,
      SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: webpush.creds.vapidPrivateKey,
      SWITCHBOARD_WEBPUSH_SUBJECT: webpush.creds.subject,
      SWITCHBOARD_APPS_FILE: appsFile,
    },
  });
});

afterAll(async () => {
  await node?.stop();
  await node?.removeData();
  await Promise.all([apns, fcm, hms, webpush, apnsBeta, fcmBeta, hmsBeta, webpushBeta].map((s) => s?.close()));
  if (appsDir) rmSync(appsDir, { recursive: true, force: true });
});

/** An offline user (no session at all) with one registered device per entry. */
async function offlineUser(devices: { device: string; os: MobileOs; token: string; app?: string }[]): Promise<string> {
  const user = uniqueUser('push');
  for (const d of devices) {
    const res = await node.http('PUT', `/v1/users/${enc(user)}/devices/${enc(d.device)}`, { os: d.os, token: d.token, ...(d.app ? { app: d.app } : {}) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  return user;
}

const byVendor = () => rigs.map((r) => [r.vendor, r] as const);
// it.each needs the cases at collection time; the rigs exist only after beforeAll, so cases name the vendor.
const VENDORS = ['apns', 'fcm', 'hms', 'webpush'] as const;
const rig = (v: string): VendorRig => byVendor().find(([name]) => name === v)![1];

describe('a message to an offline user reaches the vendor and ends ok', () => {
  it.each(VENDORS)('%s', async (vendor) => {
    const r = rig(vendor);
    const token = r.newToken();
    const user = await offlineUser([{ device: 'phone', os: r.os, token }]);
    const id = msgId(vendor);
    const sentAt = Date.now();
    await accept(node, { id, to: user, from: 'alice', title: 'Alice', text: 'lunch?', data: { thread: 't1' }, collapseKey: 'chat-t1', priority: 'normal', ttlSeconds: 600 });
    const t = await awaitOutcome(node, user, id, 'phone');
    expect(t).toMatchObject({ via: vendor, outcome: 'ok' });
    const [push, ...more] = r.seen(token);
    expect(more).toEqual([]);
    expect(push.answer).toBe(vendor === 'webpush' ? 201 : 200);
    expect(push.messageId).toBe(id);
    expect(push.text).toBe('lunch?');
    const h = push.headers;
    switch (vendor) {
      case 'apns': {
        expect(h[':path']).toBe(`/3/device/${token}`);
        expect(h['apns-topic']).toBe(apns.topic);
        expect(h['apns-push-type']).toBe('alert');
        expect(h['apns-priority']).toBe('5');
        expect(h['apns-collapse-id']).toBe('chat-t1');
        const expiration = Number(h['apns-expiration']);
        expect(expiration).toBeGreaterThanOrEqual(Math.floor(sentAt / 1000) + 600);
        expect(expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 600); // acceptance + 600 s, rounded up
        // The stand-in verified the ES256 signature (else 403); check the claims it verified against.
        const [header, claims] = String(h.authorization).replace(/^bearer /, '').split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
        expect(header).toEqual({ alg: 'ES256', kid: apns.keyId });
        expect(claims.iss).toBe(apns.teamId);
        // Section 5 (v1.1): aps.badge is the user's unread count (section 4), 1 for this fresh user.
        expect(push.body).toEqual({ aps: { alert: { title: 'Alice', body: 'lunch?' }, badge: 1 }, messageId: id, sender: 'alice', data: { thread: 't1' } });
        break;
      }
      case 'fcm': {
        // The bearer came from the OAuth exchange at the overridden endpoint (the stand-in answers 401 to any other).
        const exchange = fcm.tokenRequests();
        expect(exchange.length).toBeGreaterThanOrEqual(1);
        expect((exchange[0].parsed as Record<string, string>).grant_type).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
        const aud = JSON.parse(Buffer.from((exchange[0].parsed as Record<string, string>).assertion.split('.')[1], 'base64url').toString()).aud;
        expect(aud).toBe(`${fcm.origin}/token`);
        expect(h.authorization).toMatch(/^Bearer ya29\./);
        expect(push.body).toEqual({ message: {
          token, notification: { title: 'Alice', body: 'lunch?' },
          data: { thread: 't1', messageId: id, sender: 'alice' },
          // The badge (section 4 unread count) as the launcher count: AndroidNotification.notification_count.
          android: { priority: 'normal', collapse_key: 'chat-t1', ttl: '600s', notification: { notification_count: 1 } },
        } });
        break;
      }
      case 'hms': {
        expect(hms.tokenRequests().length).toBeGreaterThanOrEqual(1);
        expect(h.authorization).toMatch(/^Bearer DQEBA/);
        expect(push.body.message.android).toMatchObject({ urgency: 'NORMAL', ttl: '600s', notification: { title: 'Alice', body: 'lunch?', tag: 'chat-t1' } });
        expect(JSON.parse(push.body.message.data)).toEqual({ messageId: id, sender: 'alice', data: { thread: 't1' } });
        break;
      }
      case 'webpush': {
        expect(h.authorization).toMatch(new RegExp(`^vapid t=.+, k=${webpush.creds.vapidPublicKey}$`));
        expect(h.ttl).toBe('600');
        expect(h.urgency).toBe('normal');
        expect(h.topic).toBe('chat-t1');
        expect(push.body).toEqual({ title: 'Alice', body: 'lunch?', messageId: id, sender: 'alice', data: { thread: 't1' }, badge: 1 });
        break;
      }
    }
  });
});

describe('a dead token ends dead_token and the token is removed', () => {
  it.each(VENDORS)('%s', async (vendor) => {
    const r = rig(vendor);
    const token = r.newToken();
    const user = await offlineUser([{ device: 'phone', os: r.os, token }]);
    r.kill(token);
    const id = msgId(vendor);
    await accept(node, { id, to: user, text: 'are you there?' });
    const t = await awaitOutcome(node, user, id, 'phone');
    expect(t.outcome).toBe('dead_token');
    expect(t.detail).toMatch(r.deadReason);
    expect(r.seen(token)).toHaveLength(1); // a dead token is not retried
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken), 'hasToken false');
    // The next message finds no token: no vendor request, the user is unreachable.
    const next = msgId(`${vendor}-after`);
    await accept(node, { id: next, to: user, text: 'hello?' });
    const d = await awaitDecision(node, user, next);
    expect(d).toMatchObject({ route: 'held', targets: [] });
    expect(r.seen(token)).toHaveLength(1);
  });
});

describe('a throttled push is retried after Retry-After and ends ok', () => {
  it.each(VENDORS)('%s', async (vendor) => {
    const r = rig(vendor);
    const token = r.newToken();
    const user = await offlineUser([{ device: 'phone', os: r.os, token }]);
    r.throttleOnce(token);
    const id = msgId(vendor);
    await accept(node, { id, to: user, text: 'retry me' });
    const t = await awaitOutcome(node, user, id, 'phone', RETRY_TIMEOUT_MS);
    expect(t.outcome).toBe('ok');
    const [first, second, ...more] = r.seen(token);
    expect(more).toEqual([]);
    expect(first.answer).toBe(vendor === 'hms' ? 503 : 429);
    expect(second.answer).toBe(vendor === 'webpush' ? 201 : 200);
    expect(second.messageId).toBe(id);
    // Retry-After: 1 (timers may fire a few ms early; both stamps are taken by the stand-in in this process).
    expect(second.at - first.at).toBeGreaterThanOrEqual(990);
  });
});

describe('a vendor failing with 5xx is given up after SWITCHBOARD_PUSH_MAX_ATTEMPTS with its reason', () => {
  it.each(VENDORS)('%s', async (vendor) => {
    const r = rig(vendor);
    const token = r.newToken();
    const user = await offlineUser([{ device: 'phone', os: r.os, token }]);
    r.failing(token);
    try {
      const id = msgId(vendor);
      await accept(node, { id, to: user, text: 'doomed' });
      const t = await awaitOutcome(node, user, id, 'phone', RETRY_TIMEOUT_MS);
      expect(t.outcome).toBe('failed');
      expect(t.detail).toMatch(new RegExp(`gave up after ${MAX_ATTEMPTS} attempts`));
      expect(t.detail).toMatch(r.failReason);
      expect(r.seen(token)).toHaveLength(MAX_ATTEMPTS);
      // A failed push keeps the token (only a dead-token answer removes it).
      const view = await viewUntil(node, user, () => true, 'view');
      expect(view.devices.find((d) => d.device === 'phone')?.hasToken).toBe(true);
    } finally {
      r.healthy();
    }
  });
});

describe('oversize text is shortened so the push fits 4096 bytes', () => {
  // Multi-byte characters, so a cut in the middle of a character would show as invalid UTF-8 / a replacement char.
  const text = 'Grüße aus Zürich 🙂 '.repeat(400);
  it.each(VENDORS)('%s', async (vendor) => {
    const r = rig(vendor);
    const token = r.newToken();
    const user = await offlineUser([{ device: 'phone', os: r.os, token }]);
    const id = msgId(vendor);
    await accept(node, { id, to: user, title: 'Long', text });
    const t = await awaitOutcome(node, user, id, 'phone');
    expect(t.outcome).toBe('ok');
    const [push] = r.seen(token);
    // FCM's 4096 bytes count the notification and the data, not the token and options around them; Push Kit's the
    // body "excluding token" (server API, Sending Messages).
    const counted = vendor === 'fcm'
      ? Buffer.byteLength(JSON.stringify({ notification: push.body.message.notification, data: push.body.message.data }))
      : vendor === 'hms'
        ? Buffer.byteLength(JSON.stringify({ ...push.body, message: { ...push.body.message, token: [] } }))
        : push.bytes;
    expect(counted).toBeLessThanOrEqual(4096);
    expect(push.text!.endsWith('…')).toBe(true);
    expect(text.startsWith(push.text!.slice(0, -1))).toBe(true);
    expect(push.text!).not.toContain('\uFFFD');
    // Shortened only as far as needed: most of the 4 KiB budget carries text.
    expect(Buffer.byteLength(push.text!)).toBeGreaterThan(vendor === 'webpush' ? 3000 : 2500);
    expect(push.messageId).toBe(id);
  });
});

describe('several apps: a device registered with "app":"beta" is pushed with the beta credentials', () => {
  it.each(VENDORS)('%s', async (vendor) => {
    const main = rig(vendor);
    const beta = betaRigs.get(vendor)!;
    const mainToken = main.newToken();
    const betaToken = beta.newToken();
    const user = await offlineUser([
      { device: 'phone-main', os: main.os, token: mainToken },
      { device: 'phone-beta', os: beta.os, token: betaToken, app: 'beta' },
    ]);
    const id = msgId(vendor);
    await accept(node, { id, to: user, title: 'Both', text: 'two apps' });
    expect(await awaitOutcome(node, user, id, 'phone-main')).toMatchObject({ via: vendor, outcome: 'ok' });
    expect(await awaitOutcome(node, user, id, 'phone-beta')).toMatchObject({ via: vendor, outcome: 'ok' });
    // Each device's push went to its own app's stand-in only, which accepted that app's credentials.
    expect(main.seen(mainToken).map((p) => p.messageId)).toEqual([id]);
    expect(beta.seen(betaToken).map((p) => p.messageId)).toEqual([id]);
    expect(main.seen(betaToken)).toEqual([]);
    expect(beta.seen(mainToken)).toEqual([]);
    const betaPush = beta.seen(betaToken)[0];
    switch (vendor) {
      case 'apns':
        expect(main.seen(mainToken)[0].headers['apns-topic']).toBe(apns.topic);
        expect(betaPush.headers['apns-topic']).toBe('com.example.switchboard.beta');
        expect(JSON.parse(Buffer.from(String(betaPush.headers.authorization).split('.')[0].replace(/^bearer /, ''), 'base64url').toString()).kid).toBe('BETAKEY678');
        break;
      case 'fcm':
        expect(fcmBeta.sends().at(-1)!.path).toBe('/v1/projects/switchboard-beta/messages:send');
        expect(fcmBeta.tokenRequests().length).toBeGreaterThanOrEqual(1);
        break;
      case 'hms':
        expect(hmsBeta.sends().at(-1)!.path).toBe(`/v1/${hmsBeta.creds.appId}/messages:send`);
        break;
      case 'webpush':
        expect(String(betaPush.headers.authorization)).toContain(`k=${webpushBeta.creds.vapidPublicKey}`);
        break;
    }
  });

  it("a device whose vendor has no credentials for its app is not reachable by push (section 4): no push, nobody reachable", async () => {
    const token = rig('apns').newToken();
    const user = await offlineUser([{ device: 'phone', os: 'ios', token, app: 'fcmonly' }]);
    const id = msgId('fcmonly');
    await accept(node, { id, to: user, text: 'nobody home' });
    const d = await awaitDecision(node, user, id);
    expect(d.route).not.toMatch(/^(mobile|pc|pc_fallback)$/); // undeliverable, or held where messages are held
    expect(d.targets).toEqual([]);
    expect(rig('apns').seen(token)).toEqual([]);
  });

  it('a device of an app that is not configured is refused when it registers (issue 9: 400 invalid_field)', async () => {
    const token = rig('apns').newToken();
    const res = await node.http('PUT', `/v1/users/${enc(uniqueUser('gamma'))}/devices/phone`, { os: 'ios', token, app: 'gamma' });
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', message: expect.stringContaining('app') } } });
  });
});

describe('stand-ins saw only valid requests', () => {
  it('no TLS, protocol or authentication errors', async () => {
    expect(apns.stats().errors).toEqual([]);
    expect(apnsBeta.stats().errors).toEqual([]);
    // A 401/403 anywhere would mean a bearer, provider token or VAPID key the stand-in did not issue or expect.
    const denied = [...apns.requests.map((r) => r.answer), ...apnsBeta.requests.map((r) => r.answer),
      ...[fcm, hms, webpush, fcmBeta, hmsBeta, webpushBeta].flatMap((s) => s.requests.map((r) => r.answer))].filter((a) => a === 401 || a === 403);
    expect(denied).toEqual([]);
  });
});
