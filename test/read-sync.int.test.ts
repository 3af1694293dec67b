import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { enc, msgId, Peer, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';
import { startApnsServer, type ApnsServer } from './vendors/apns-server.js';
import { startFcmServer, type FcmServer } from './vendors/fcm-server.js';

/**
 * Issue 10 part 1 on a real node with the APNs and FCM stand-ins (PROTOCOL.md v1.1 section 4, read sync): alert
 * pushes carry the badge; a read (frame or POST) sends `clear` to the user's other sessions and a silent clear push
 * to offline phones, checked field by field against Apple's and Google's documentation.
 */

let node: NodeProcess;
let apns: ApnsServer;
let fcm: FcmServer;
const peers: Peer[] = [];

beforeAll(async () => {
  [apns, fcm] = await Promise.all([startApnsServer(), startFcmServer({ tls: true })]);
  node = await NodeProcess.start({
    env: {
      NODE_EXTRA_CA_CERTS: apns.caFile,
      SWITCHBOARD_APNS_ENDPOINT: apns.origin,
      SWITCHBOARD_APNS_KEY_FILE: apns.keyFile,
      SWITCHBOARD_APNS_KEY_ID: apns.keyId,
      SWITCHBOARD_APNS_TEAM_ID: apns.teamId,
      SWITCHBOARD_APNS_TOPIC: apns.topic,
      SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: fcm.serviceAccountFile,
      SWITCHBOARD_FCM_ENDPOINT: fcm.origin,
    },
  });
}, 30_000);

afterAll(async () => {
  for (const p of peers) p.close();
  await node?.stop();
  await node?.removeData();
  await Promise.all([apns?.close(), fcm?.close()]);
});

const apnsFor = (token: string) => apns.requests.filter((r) => r.token === token);
const fcmFor = (token: string) => fcm.sends().filter((r) => (r.parsed as any)?.message?.token === token);

describe('read sync and badges', () => {
  it('badges on alerts; a read clears the other sessions and sends silent APNs / FCM clear pushes', async () => {
    const user = uniqueUser('reader');
    const iosToken = 'ab'.repeat(32);
    const fcmToken = 'fcm-token-reader-0001';
    expect((await node.http('PUT', `/v1/users/${enc(user)}/devices/iphone`, { os: 'ios', token: iosToken })).status).toBe(200);
    expect((await node.http('PUT', `/v1/users/${enc(user)}/devices/pixel`, { os: 'android', token: fcmToken })).status).toBe(200);
    // Two PCs, both idle: the phones get the pushes; the PCs are "the user's other connected sessions".
    const desk = await Peer.open(node, { sub: user, dev: 'desk', kind: 'pc' });
    const laptop = await Peer.open(node, { sub: user, dev: 'laptop', kind: 'pc' });
    peers.push(desk, laptop);
    for (const p of [desk, laptop]) p.send({ type: 'presence', state: 'inactive', reason: 'idle' });
    await viewUntil(node, user, (v) => v.pc.sessions === 2, 'two PCs');

    const [m1, m2, m3] = [msgId('r1'), msgId('r2'), msgId('r3')];
    for (const id of [m1, m2, m3]) expect((await node.send({ id, to: user, title: 'T', text: id })).status).toBe(202);
    await until(() => apnsFor(iosToken).length === 3 && fcmFor(fcmToken).length === 3, 10_000, 'alert pushes');
    // APNs: "badge: the number to display in a badge on your app's icon" (Apple, Generating a remote notification).
    // By message: pushes go out from several sender threads at once and may reach the vendor in another order.
    const byMessage = (pairs: [string, number][]) => [m1, m2, m3].map((id) => pairs.find(([m]) => m === id)?.[1]);
    expect(byMessage(apnsFor(iosToken).map((r) => [JSON.parse(r.body).messageId, JSON.parse(r.body).aps.badge]))).toEqual([1, 2, 3]);
    expect(apnsFor(iosToken)[0].headers['apns-push-type']).toBe('alert');
    // FCM: AndroidNotification.notification_count, "the number of items this notification represents" (launcher badge).
    expect(byMessage(fcmFor(fcmToken).map((r) => [(r.parsed as any).message.data.messageId, (r.parsed as any).message.android.notification.notification_count]))).toEqual([1, 2, 3]);
    expect((await userView(node, user)).unread).toBe(3);

    // The laptop reads m1: only the desk gets clear; offline phones get a silent clear push each.
    laptop.send({ type: 'read', ids: [m1] });
    expect(await desk.client.next((f) => f.type === 'clear')).toEqual({ type: 'clear', ids: [m1], badge: 2 });
    await until(() => apnsFor(iosToken).length === 4 && fcmFor(fcmToken).length === 4, 10_000, 'clear pushes');
    const silentApns = apnsFor(iosToken)[3];
    // Apple, "Sending notification requests to APNs": background pushes use apns-push-type background and
    // apns-priority 5; "Pushing background updates to your App": aps holds content-available 1 and no alert/sound.
    expect(silentApns.answer).toBe(200);
    expect(silentApns.headers).toMatchObject({ 'apns-push-type': 'background', 'apns-priority': '5', 'apns-topic': apns.topic, 'apns-collapse-id': 'switchboard-clear' });
    expect(Number(silentApns.headers['apns-expiration'])).toBeGreaterThan(Date.now() / 1000);
    expect(JSON.parse(silentApns.body)).toEqual({ aps: { 'content-available': 1, badge: 2 }, type: 'clear', ids: [m1] });
    // Google, "About FCM messages": a data message has only a `data` key (no `notification`), values are strings;
    // collapse_key lets a newer clear replace an older one (Android "collapsible messages").
    const silentFcm = (fcmFor(fcmToken)[3].parsed as any).message;
    expect(silentFcm).toEqual({
      token: fcmToken,
      data: { type: 'clear', ids: JSON.stringify([m1]), badge: '2' },
      android: { priority: 'normal', collapse_key: 'switchboard-clear', ttl: '3600s' },
    });
    expect(laptop.client.frames.some((f) => f.type === 'clear')).toBe(false);

    // POST read: both PCs get clear; the badge never goes below 0 (m1 twice, an unknown id).
    const read = await node.http('POST', `/v1/users/${enc(user)}/read`, { ids: [m1, m2, m3, 'never-sent'] });
    expect(read).toMatchObject({ status: 200, body: { unread: 0 } });
    expect(await laptop.client.next((f) => f.type === 'clear')).toMatchObject({ badge: 0 });
    expect((await userView(node, user)).unread).toBe(0);
  }, 60_000);

  it('a read drops held messages; the replay delivers only the rest', async () => {
    const user = uniqueUser('heldread');
    const [a, b] = [msgId('ha'), msgId('hb')];
    for (const id of [a, b]) expect((await node.send({ id, to: user })).status).toBe(202);
    await viewUntil(node, user, (v) => v.held === 2, 'two held');
    expect((await node.http('POST', `/v1/users/${enc(user)}/read`, { ids: [a] })).status).toBe(200);
    expect((await userView(node, user)).held).toBe(1);
    const p = await Peer.open(node, { sub: user, dev: 'pc', kind: 'pc' });
    peers.push(p);
    await p.message(b);
    expect(p.received).toEqual([b]);
    await viewUntil(node, user, (v) => v.unread === 1, 'b unread');
  }, 30_000);
});
