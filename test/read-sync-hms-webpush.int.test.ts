import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { enc, msgId, Peer, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';
import { startHmsServer, type HmsServer } from './vendors/hms-server.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

/**
 * Section 4 read sync for Huawei Push Kit (os harmony) and Web Push (os web) on a real node: a read sends a silent
 * clear push to each offline device, checked field by field (Push Kit server API; RFC 8030 / 8291, the stand-in
 * decrypts). The APNs and FCM counterpart is test/read-sync.int.test.ts.
 */

let node: NodeProcess;
let hms: HmsServer;
let webpush: WebPushServer;
const peers: Peer[] = [];

beforeAll(async () => {
  [hms, webpush] = await Promise.all([startHmsServer({ tls: true }), startWebPushServer()]);
  node = await NodeProcess.start({
    env: {
      NODE_EXTRA_CA_CERTS: webpush.caFile,
      SWITCHBOARD_HMS_APP_ID: hms.creds.appId,
      SWITCHBOARD_HMS_CLIENT_ID: hms.creds.clientId,
      SWITCHBOARD_HMS_CLIENT_SECRET: hms.creds.clientSecret,
      SWITCHBOARD_HMS_AUTH_ENDPOINT: hms.creds.authEndpoint,
      SWITCHBOARD_HMS_PUSH_ENDPOINT: hms.creds.pushEndpoint,
      SWITCHBOARD_HMS_BADGE_CLASS: 'com.example.chat.MainActivity',
      SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: '127.0.0.1',
      SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY: webpush.creds.vapidPublicKey,
      SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY: webpush.creds.vapidPrivateKey,
      SWITCHBOARD_WEBPUSH_SUBJECT: webpush.creds.subject,
    },
  });
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.close();
  await node?.stop();
  await node?.removeData();
  await Promise.all([hms?.close(), webpush?.close()]);
});

type HmsSent = { validate_only: boolean; message: { data: string; token: string[]; android: Record<string, unknown> } };
const hmsFor = (token: string) => hms.sends().map((r) => r.parsed as HmsSent).filter((s) => s?.message?.token?.[0] === token);
const webFor = (endpointId: string) => webpush.requests.filter((r) => r.path === `/push/${endpointId}`);

describe('read sync for Huawei Push Kit and Web Push', () => {
  it('a read sends a Push Kit data message and an encrypted Web Push clear, each collapsing with later clears', async () => {
    const user = uniqueUser('hmsweb');
    const hmsToken = `hms-${'a'.repeat(60)}`;
    const subscription = webpush.subscribe();
    const endpointId = new URL((JSON.parse(subscription) as { endpoint: string }).endpoint).pathname.split('/').pop()!;
    expect((await node.http('PUT', `/v1/users/${enc(user)}/devices/mate`, { os: 'harmony', token: hmsToken })).status).toBe(200);
    expect((await node.http('PUT', `/v1/users/${enc(user)}/devices/browser`, { os: 'web', token: subscription })).status).toBe(200);
    const desk = await Peer.open(node, { sub: user, dev: 'desk', kind: 'pc' });
    peers.push(desk);
    desk.send({ type: 'presence', state: 'inactive', reason: 'idle' });
    await viewUntil(node, user, (v) => v.pc.sessions === 1, 'the PC');

    const [m1, m2, m3] = [msgId('h1'), msgId('h2'), msgId('h3')];
    for (const id of [m1, m2, m3]) expect((await node.send({ id, to: user, title: 'T', text: id })).status).toBe(202);
    await until(() => hmsFor(hmsToken).length === 3 && webFor(endpointId).length === 3, 10_000, 'alert pushes');
    expect((await userView(node, user)).unread).toBe(3);
    // Section 4: an alert's badge is the unread count; Push Kit's is android.notification.badge with the entry activity.
    const alertBadges = hmsFor(hmsToken).map((s) => (s.message.android.notification as { badge?: { class: string; set_num: number } }).badge);
    expect(alertBadges.map((b) => b?.class)).toEqual(Array(3).fill('com.example.chat.MainActivity'));
    expect(alertBadges.map((b) => b?.set_num).sort()).toEqual([1, 2, 3]);

    // The PC reads m1: a silent clear push to each offline device.
    desk.send({ type: 'read', ids: [m1] });
    await until(() => hmsFor(hmsToken).length === 4 && webFor(endpointId).length === 4, 10_000, 'clear pushes');
    // Push Kit, "Sending Messages": no notification anywhere (a data message, handed to the app, shown by nothing),
    // message.data a string; AndroidConfig.collapse_key 100: the offline cache keeps the newest of that group.
    const hmsClear = hmsFor(hmsToken)[3];
    expect(hmsClear).toEqual({
      validate_only: false,
      message: { data: hmsClear.message.data, android: { urgency: 'NORMAL', collapse_key: 100, ttl: '3600s' }, token: [hmsToken] },
    });
    expect(JSON.parse(hmsClear.message.data)).toEqual({ type: 'clear', ids: [m1], badge: 2 });
    // RFC 8030: Topic (5.4) replaces a queued clear with a newer one, Urgency low (5.3); RFC 8291 aes128gcm, which
    // the stand-in decrypted with the subscription's private key.
    const webClear = webFor(endpointId)[3];
    expect(webClear.headers).toMatchObject({ 'content-encoding': 'aes128gcm', ttl: '3600', urgency: 'low', topic: 'switchboard-clear' });
    expect(webClear.parsed).toEqual({ type: 'clear', ids: [m1], badge: 2 });

    // A second read: the same collapse group / topic, the badge never below 0 (m1 twice).
    expect((await node.http('POST', `/v1/users/${enc(user)}/read`, { ids: [m1, m2, m3] })).status).toBe(200);
    await until(() => hmsFor(hmsToken).length === 5 && webFor(endpointId).length === 5, 10_000, 'second clear pushes');
    const hmsSecond = hmsFor(hmsToken)[4];
    expect(hmsSecond.message.android.collapse_key).toBe(100);
    expect(JSON.parse(hmsSecond.message.data)).toEqual({ type: 'clear', ids: [m1, m2, m3], badge: 0 });
    expect(webFor(endpointId)[4].headers.topic).toBe('switchboard-clear');
    expect(webFor(endpointId)[4].parsed).toEqual({ type: 'clear', ids: [m1, m2, m3], badge: 0 });
  }, 60_000);
});
