import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import {
  accept,
  awaitDecision,
  awaitOutcome,
  decisionsFor,
  enc,
  msgId,
  Peer,
  settled,
  target,
  uniqueUser,
  userView,
  viewUntil,
  type UserView,
} from './support/scenario.js';
import { TestClient, until } from './support/ws-client.js';
import { startApnsServer } from './vendors/apns-server.js';
import { startFcmServer } from './vendors/fcm-server.js';

/**
 * The routing rule (PROTOCOL.md section 4) and the seed's claims 1-6, end to end: one real compiled node,
 * real WebSocket clients over loopback, messages sent over HTTP, outcomes read from the node's decisions API.
 */

type Os = 'ios' | 'android' | 'harmony' | 'web';
type Reason = 'idle' | 'screen_locked' | 'client_locked';

const nodes: NodeProcess[] = [];
const peers: Peer[] = [];

/**
 * APNs and FCM are on, with credentials that are well formed (start-up reads and checks them) but that the vendors do
 * not know: keys of their own, not the stand-ins'. Pushes to iOS and Android devices are attempted and fail at once
 * with the vendor's refusal (APNs 403 InvalidProviderToken, FCM's token exchange 400 invalid_grant: configuration
 * errors, not retried), so routing to a vendor shows in the decisions without a working vendor.
 * Huawei Push Kit and Web Push are off: their devices are not reachable by push (section 4).
 */
let refusingVendors: Promise<{ env: Record<string, string>; close: () => Promise<void> }> | undefined;

function brokenVendors(): Promise<Record<string, string>> {
  refusingVendors ??= (async () => {
    const [apns, fcm] = await Promise.all([startApnsServer(), startFcmServer({ tls: true })]);
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-claims-keys-'));
    const keyFile = join(dir, 'AuthKey_CLAIMS1234.p8');
    writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const serviceAccountFile = join(dir, 'service-account.json');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    writeFileSync(serviceAccountFile, JSON.stringify({ project_id: 'claims', client_email: 'claims@claims.iam.gserviceaccount.com', private_key: rsa }), { mode: 0o600 });
    return {
      env: {
        NODE_EXTRA_CA_CERTS: apns.caFile,
        SWITCHBOARD_APNS_ENDPOINT: apns.origin,
        SWITCHBOARD_APNS_KEY_FILE: keyFile,
        SWITCHBOARD_APNS_KEY_ID: 'CLAIMS1234',
        SWITCHBOARD_APNS_TEAM_ID: 'CLAIMSTEAM',
        SWITCHBOARD_APNS_TOPIC: 'com.example.claims',
        SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE: serviceAccountFile,
        SWITCHBOARD_FCM_ENDPOINT: fcm.origin,
      },
      close: async () => {
        await Promise.all([apns.close(), fcm.close()]);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  })();
  return refusingVendors.then((v) => v.env);
}

/** What each vendor answers those credentials (the failed push's detail). */
const REFUSAL: Record<'ios' | 'android', string> = { ios: 'InvalidProviderToken', android: 'invalid_grant' };

async function startNode(env: Record<string, string>): Promise<NodeProcess> {
  const node = await NodeProcess.start({ env: { ...(await brokenVendors()), ...env } });
  nodes.push(node);
  return node;
}

afterAll(async () => {
  for (const p of peers) p.close();
  await Promise.all(nodes.map(async (n) => {
    await n.stop();
    await n.removeData();
  }));
  await (await refusingVendors)?.close();
});

/** A PC session; `presence` reported and seen by the node before it returns. */
async function pc(node: NodeProcess, user: string, dev: string, presence?: 'active' | Reason, opts: { autoAck?: boolean } = {}): Promise<Peer> {
  const before = (await userView(node, user)).pc.sessions;
  const p = await Peer.open(node, { sub: user, dev, kind: 'pc' }, opts);
  peers.push(p);
  await viewUntil(node, user, (v) => v.pc.sessions === before + 1, `PC ${dev} counted as a session`);
  if (presence) await report(node, user, p, presence);
  return p;
}

/**
 * Reports PC presence and awaits the node's view reflecting it. With `barrier`, when the user's overall state
 * will not change (another PC stays active), a ping sent after it is awaited instead: frames of one socket are
 * handled in order, so the report reached the node before the pong left it.
 */
async function report(node: NodeProcess, user: string, p: Peer, presence: 'active' | Reason, barrier = false): Promise<void> {
  if (barrier) {
    p.send(presence === 'active' ? { type: 'presence', state: 'active' } : { type: 'presence', state: 'inactive', reason: presence });
    p.send({ type: 'ping' });
    await p.client.next((f) => f.type === 'pong');
  } else if (presence === 'active') {
    p.send({ type: 'presence', state: 'active' });
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'PC state active');
  } else {
    p.send({ type: 'presence', state: 'inactive', reason: presence });
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === presence, `PC state inactive (${presence})`);
  }
}

/** A mobile session (the app connected, so in the foreground), seen online by the node before it returns. */
async function phone(node: NodeProcess, user: string, dev: string, os: Os, opts: { autoAck?: boolean } = {}): Promise<Peer> {
  const p = await Peer.open(node, { sub: user, dev, kind: 'mobile', os }, opts);
  peers.push(p);
  await viewUntil(node, user, (v) => device(v, dev)?.online === true, `phone ${dev} online`);
  return p;
}

async function background(node: NodeProcess, user: string, p: Peer): Promise<void> {
  p.send({ type: 'presence', state: 'background' });
  await viewUntil(node, user, (v) => device(v, p.device)?.online === false, `phone ${p.device} offline (backgrounded)`);
}

async function foreground(node: NodeProcess, user: string, p: Peer): Promise<void> {
  p.send({ type: 'presence', state: 'foreground' });
  await viewUntil(node, user, (v) => device(v, p.device)?.online === true, `phone ${p.device} online (foreground)`);
}

async function putToken(node: NodeProcess, user: string, dev: string, os: Os, token: string): Promise<void> {
  const res = await node.http('PUT', `/v1/users/${enc(user)}/devices/${enc(dev)}`, { os, token });
  expect(res.status).toBe(200);
  await viewUntil(node, user, (v) => device(v, dev)?.hasToken === true, `device ${dev} has a token`);
}

function device(v: UserView, dev: string): UserView['devices'][number] | undefined {
  return v.devices.find((d) => d.device === dev);
}

const TOKENS: Record<Os, string> = {
  ios: 'a'.repeat(64),
  android: 'fcm-registration-token:APA91bExample_1234567890',
  harmony: 'IQAAAACy0kYkAAAB-harmony-token',
  web: JSON.stringify({ endpoint: 'https://fcm.googleapis.com/fcm/send/abc', keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' } }),
};

const VENDOR: Record<Os, string> = { ios: 'apns', android: 'fcm', harmony: 'hms', web: 'webpush' };

// --- one node with the default timings (ack timeout 5 s, presence TTL 90 s, no push delay) -----------------------

describe('routing on one node with default timings', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNode({ SWITCHBOARD_NODE_ID: 'claims-node' });
  });

  it('claim 3: PC active -> the message goes to the PC, not to the connected phone', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'active');
    const mob = await phone(node, user, 'mob', 'ios');
    const id = msgId();
    await accept(node, { id, to: user, from: 'bob', title: 'Hi', text: 'claim 3', data: { thread: 't1' } });

    const frame = await desk.message(id);
    expect(frame).toMatchObject({ type: 'message', id, from: 'bob', title: 'Hi', text: 'claim 3', data: { thread: 't1' } });
    expect(typeof frame.ts).toBe('number');

    const d = await awaitDecision(node, user, id, settled);
    expect(d).toMatchObject({ id, route: 'pc', reason: 'pc_active' });
    expect(d.targets.map((t) => [t.device, t.via])).toEqual([['desk', 'pc']]);
    expect(target(d, 'desk')!.outcome).toBe('acked');
    expect(typeof d.at).toBe('number');

    // Marker: the PC turns inactive, the next message goes to the phone; the earlier one must never have arrived there.
    await report(node, user, desk, 'idle');
    const marker = msgId('marker');
    await accept(node, { id: marker, to: user, text: 'marker' });
    await mob.message(marker);
    expect(mob.received).toEqual([marker]);
    expect(desk.received).toEqual([id]);
  });

  it('claim 3: PC active -> no vendor push either, even for a phone with a stored token', async () => {
    const user = uniqueUser();
    await putToken(node, user, 'mob', 'android', TOKENS.android);
    const desk = await pc(node, user, 'desk', 'active');
    const id = msgId();
    await accept(node, { id, to: user, text: 'x' });
    await desk.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d.route).toBe('pc');
    expect(d.targets).toHaveLength(1);
    expect(d.targets[0]).toMatchObject({ device: 'desk', via: 'pc', outcome: 'acked' });
    expect(await decisionsFor(node, user, id)).toHaveLength(1);
  });

  for (const reason of ['idle', 'screen_locked', 'client_locked'] as const) {
    it(`claims 2/4: PC inactive (${reason}) -> the phone gets it directly, the PC does not`, async () => {
      const user = uniqueUser();
      const desk = await pc(node, user, 'desk', 'active');
      await report(node, user, desk, reason);
      const mob = await phone(node, user, 'mob', 'android');
      const id = msgId();
      await accept(node, { id, to: user, text: reason });
      await mob.message(id);
      const d = await awaitDecision(node, user, id, settled);
      expect(d).toMatchObject({ id, route: 'mobile', reason });
      expect(d.targets).toEqual([expect.objectContaining({ device: 'mob', via: 'mobile', outcome: 'acked' })]);

      // Marker: the PC turns active and gets the next one; the earlier one never reached it.
      await report(node, user, desk, 'active');
      const marker = msgId('marker');
      await accept(node, { id: marker, to: user });
      await desk.message(marker);
      expect(desk.received).toEqual([marker]);
      expect(mob.received).toEqual([id]);
    });
  }

  it('claim 4: a PC that has reported nothing yet is not active', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk');
    expect((await userView(node, user)).pc.state).toBe('inactive');
    const mob = await phone(node, user, 'mob', 'ios');
    const id = msgId();
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d.route).toBe('mobile');
    expect(desk.received).toEqual([]);
  });

  it('claim 5: phone in the foreground -> direct via "mobile"; backgrounded -> its vendor push', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'screen_locked');
    const mob = await phone(node, user, 'mob', 'android');
    mob.send({ type: 'register', os: 'android', token: TOKENS.android });
    await mob.client.next((f) => f.type === 'registered');

    const first = msgId('fg');
    await accept(node, { id: first, to: user });
    await mob.message(first);
    const d1 = await awaitDecision(node, user, first, settled);
    expect(d1).toMatchObject({ route: 'mobile', reason: 'screen_locked' });
    expect(d1.targets).toEqual([expect.objectContaining({ device: 'mob', via: 'mobile', outcome: 'acked' })]);

    await background(node, user, mob);
    const second = msgId('bg');
    await accept(node, { id: second, to: user });
    const d2 = await awaitDecision(node, user, second, settled);
    expect(d2).toMatchObject({ route: 'mobile', reason: 'screen_locked' });
    expect(d2.targets.map((t) => [t.device, t.via])).toEqual([['mob', 'fcm']]);

    // The vendor refuses this node's credentials (see above), so that push failed: the message is held, not lost.
    expect(d2.targets[0].outcome).toBe('failed');
    await awaitDecision(node, user, second, (d) => d.route === 'held' && d.reason === 'push_failed');
    // Back in the foreground, a marker arrives directly, and so does the held message: nothing missed.
    await foreground(node, user, mob);
    const marker = msgId('marker');
    await accept(node, { id: marker, to: user });
    await mob.message(marker);
    await mob.message(second);
    expect([...mob.received].sort()).toEqual([first, second, marker].sort());
    expect(desk.received).toEqual([]);
  });

  for (const os of ['ios', 'android'] as const) {
    it(`claims 1/6: offline ${os} phone with a stored token -> route "mobile" via "${VENDOR[os]}", failing clearly with unusable credentials`, async () => {
      const user = uniqueUser();
      await putToken(node, user, 'mob', os, TOKENS[os]);
      const desk = await pc(node, user, 'desk', 'idle');
      const id = msgId();
      await accept(node, { id, to: user, title: 't', text: 'offline' });
      const d = await awaitDecision(node, user, id, settled);
      expect(d).toMatchObject({ id, route: 'mobile', reason: 'idle' });
      expect(d.targets).toHaveLength(1);
      const t = d.targets[0];
      expect(t).toMatchObject({ device: 'mob', via: VENDOR[os], outcome: 'failed' });
      expect(t.detail).toEqual(expect.stringContaining(REFUSAL[os]));
      // Claim 2: the inactive PC does not get it, not even as a fallback for a failed push.
      expect(desk.received).toEqual([]);
      // The vendor refused our credentials (REFUSAL above), not the token: the token stays.
      expect(device(await userView(node, user), 'mob')?.hasToken).toBe(true);
    });
  }

  for (const os of ['harmony', 'web'] as const) {
    it(`section 4: offline ${os} phone with a stored token but no ${VENDOR[os]} credentials -> not reachable by push, "pc_fallback" to the locked PC`, async () => {
      const user = uniqueUser();
      await putToken(node, user, 'mob', os, TOKENS[os]);
      const desk = await pc(node, user, 'desk', 'idle');
      const id = msgId();
      await accept(node, { id, to: user, title: 't', text: 'offline' });
      // No push is attempted (none "fails"): the PC is what is reachable.
      await desk.message(id);
      const d = await awaitDecision(node, user, id, settled);
      expect(d).toMatchObject({ id, route: 'pc_fallback', reason: 'idle' });
      expect(d.targets).toEqual([expect.objectContaining({ device: 'desk', via: 'pc', outcome: 'acked' })]);
      // The token stays: it is not dead, its vendor is only off here.
      expect(device(await userView(node, user), 'mob')?.hasToken).toBe(true);
    });
  }

  it('no PC session -> reason "no_pc", the foreground phone gets it', async () => {
    const user = uniqueUser();
    const mob = await phone(node, user, 'mob', 'ios');
    const id = msgId();
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d).toMatchObject({ route: 'mobile', reason: 'no_pc' });
    expect(d.targets).toEqual([expect.objectContaining({ device: 'mob', via: 'mobile', outcome: 'acked' })]);
  });

  it('PC inactive and no phone reachable -> "pc_fallback" to the connected PC', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'client_locked');
    // A backgrounded phone without a token is not reachable.
    const mob = await phone(node, user, 'mob', 'ios');
    await background(node, user, mob);
    const id = msgId();
    await accept(node, { id, to: user });
    await desk.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d).toMatchObject({ route: 'pc_fallback', reason: 'client_locked' });
    expect(d.targets).toEqual([expect.objectContaining({ device: 'desk', via: 'pc', outcome: 'acked' })]);
    expect(mob.received).toEqual([]);
  });

  it('nothing reachable and no PC session -> "held" (v1.1); with ttlSeconds 0 -> "undeliverable"', async () => {
    const user = uniqueUser();
    const id = msgId();
    await accept(node, { id, to: user });
    const d = await awaitDecision(node, user, id);
    expect(d).toMatchObject({ id, route: 'held', reason: 'no_pc', targets: [] });
    const now = msgId();
    await accept(node, { id: now, to: user, ttlSeconds: 0 });
    expect(await awaitDecision(node, user, now)).toMatchObject({ id: now, route: 'undeliverable', reason: 'no_pc', targets: [] });
  });

  it('a phone whose token was deleted is no longer pushed to -> "held"', async () => {
    const user = uniqueUser();
    await putToken(node, user, 'mob', 'ios', TOKENS.ios);
    expect((await node.http('DELETE', `/v1/users/${enc(user)}/devices/mob`)).status).toBe(204);
    await viewUntil(node, user, (v) => device(v, 'mob')?.hasToken !== true, 'token gone');
    const id = msgId();
    await accept(node, { id, to: user });
    const d = await awaitDecision(node, user, id);
    expect(d).toMatchObject({ route: 'held', targets: [] });
  });

  it('PC active -> every connected PC session gets it (inactive ones too), no phone does', async () => {
    const user = uniqueUser();
    const a = await pc(node, user, 'desk-a', 'active');
    const b = await pc(node, user, 'desk-b');
    await report(node, user, b, 'screen_locked', true);
    const c = await pc(node, user, 'laptop');
    await report(node, user, c, 'idle', true);
    expect(await userView(node, user)).toMatchObject({ pc: { state: 'active', sessions: 3 } });
    const mob = await phone(node, user, 'mob', 'ios');
    const id = msgId();
    await accept(node, { id, to: user });
    await Promise.all([a.message(id), b.message(id), c.message(id)]);
    const d = await awaitDecision(node, user, id, settled);
    expect(d.route).toBe('pc');
    expect(d.targets.map((t) => `${t.device}/${t.via}/${t.outcome}`).sort()).toEqual(['desk-a/pc/acked', 'desk-b/pc/acked', 'laptop/pc/acked']);
    expect(mob.received).toEqual([]);
  });

  it('PC inactive -> several phones: foreground ones directly, offline ones by their vendor', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'idle');
    const iphone = await phone(node, user, 'iphone', 'ios');
    const pixel = await phone(node, user, 'pixel', 'android');
    await putToken(node, user, 'tablet', 'android', TOKENS.android);
    const id = msgId();
    await accept(node, { id, to: user });
    await Promise.all([iphone.message(id), pixel.message(id)]);
    const d = await awaitDecision(node, user, id, settled);
    expect(d).toMatchObject({ route: 'mobile', reason: 'idle' });
    expect(d.targets.map((t) => `${t.device}/${t.via}/${t.outcome}`).sort()).toEqual(['iphone/mobile/acked', 'pixel/mobile/acked', 'tablet/fcm/failed']);
    expect(desk.received).toEqual([]);
    expect(iphone.count(id) + pixel.count(id)).toBe(2);
  });

  it('GET /v1/users/{u}: owner, PC state, reason and sessions, devices online and hasToken', async () => {
    const user = uniqueUser();
    const empty = await userView(node, user);
    expect(empty).toEqual({ user, owner: 'claims-node', pc: expect.objectContaining({ state: 'inactive', sessions: 0 }), devices: [], policy: { mobile: 'when_away' }, held: 0, unread: 0 });

    const desk = await pc(node, user, 'desk', 'screen_locked');
    const mob = await phone(node, user, 'mob', 'ios');
    await putToken(node, user, 'tab', 'android', TOKENS.android);
    let v = await userView(node, user);
    expect(v).toMatchObject({ user, owner: 'claims-node', pc: { state: 'inactive', reason: 'screen_locked', sessions: 1 } });
    expect(Object.keys(v).sort()).toEqual(['devices', 'held', 'owner', 'pc', 'policy', 'unread', 'user']);
    expect(device(v, 'mob')).toEqual({ device: 'mob', os: 'ios', online: true, hasToken: false });
    expect(device(v, 'tab')).toEqual({ device: 'tab', os: 'android', online: false, hasToken: true });
    expect(device(v, 'desk')).toBeUndefined();

    mob.send({ type: 'register', os: 'ios', token: TOKENS.ios });
    await mob.client.next((f) => f.type === 'registered');
    v = await viewUntil(node, user, (x) => device(x, 'mob')?.hasToken === true, 'register frame stored');
    expect(device(v, 'mob')).toEqual({ device: 'mob', os: 'ios', online: true, hasToken: true });

    await report(node, user, desk, 'active');
    v = await userView(node, user);
    expect(v.pc).toMatchObject({ state: 'active', sessions: 1 });

    desk.close();
    await desk.client.closed;
    v = await viewUntil(node, user, (x) => x.pc.sessions === 0, 'PC session gone');
    expect(v.pc.state).toBe('inactive');
    mob.close();
    await viewUntil(node, user, (x) => device(x, 'mob')?.online === false, 'phone offline after close');
  });

  it('the same id twice -> 202 accepted, then 200 duplicate, delivered once', async () => {
    const user = uniqueUser();
    const mob = await phone(node, user, 'mob', 'ios');
    const id = msgId();
    const first = await node.send({ id, to: user, text: 'once' });
    expect(first.status).toBe(202);
    expect(first.body).toEqual({ id, status: 'accepted' });
    const again = await node.send({ id, to: user, text: 'once' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ id, status: 'duplicate' });
    await mob.message(id);
    // A later marker proves the duplicate was not queued behind the first.
    const marker = msgId('marker');
    await accept(node, { id: marker, to: user });
    await mob.message(marker);
    expect(mob.received).toEqual([id, marker]);
    expect(await decisionsFor(node, user, id)).toHaveLength(1);
  });

  it('message ids of any characters (section 3: "1-128 chars"): delivered, acked, answered duplicate, read', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'active');
    const ids = [`${msgId()}\ttab`, `${msgId()} line\nbreak`, `${msgId()}-👩\u200d💻`, ` ${msgId()} `];
    for (const id of ids) {
      await accept(node, { id, to: user, text: 'odd id' });
      expect((await desk.message(id)).id).toBe(id);
      expect(target(await awaitDecision(node, user, id, settled), 'desk')!.outcome).toBe('acked'); // its ack was taken
    }
    expect(await node.send({ id: ids[1], to: user })).toMatchObject({ status: 200, body: { id: ids[1], status: 'duplicate' } });
    expect(await node.send({ id: ids[3].trim(), to: user })).toMatchObject({ status: 202 }); // another id
    expect(await node.http('POST', `/v1/users/${encodeURIComponent(user)}/read`, { ids })).toMatchObject({ status: 200 });
  });

  it('a second connection of the same user and device replaces the first (close 4409)', async () => {
    const user = uniqueUser();
    const old = await phone(node, user, 'mob', 'ios');
    const fresh = await Peer.open(node, { sub: user, dev: 'mob', kind: 'mobile', os: 'ios' });
    peers.push(fresh);
    expect((await old.client.closed).code).toBe(4409);
    const id = msgId();
    await accept(node, { id, to: user });
    await fresh.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d.targets).toEqual([expect.objectContaining({ device: 'mob', via: 'mobile', outcome: 'acked' })]);
    expect(old.received).toEqual([]);
    // The replaced socket's close must not take the new session with it.
    expect(device(await userView(node, user), 'mob')?.online).toBe(true);
  });

  it('a second PC connection of the same device replaces the first (close 4409) and keeps one session', async () => {
    const user = uniqueUser();
    const old = await pc(node, user, 'desk', 'active');
    const fresh = await Peer.open(node, { sub: user, dev: 'desk', kind: 'pc' });
    peers.push(fresh);
    expect((await old.client.closed).code).toBe(4409);
    await viewUntil(node, user, (v) => v.pc.sessions === 1, 'one PC session');
  });

  it('user and device ids with ":" and "@" work in bodies, tokens and percent-encoded paths', async () => {
    const user = `acme:alice@example.com-${msgId('')}`;
    const desk = await pc(node, user, 'pc:1@home', 'idle');
    const mob = await phone(node, user, 'phone:1@pocket', 'ios');
    await putToken(node, user, 'tab:2@sofa', 'android', TOKENS.android);
    const v = await userView(node, user);
    expect(v.user).toBe(user);
    expect(device(v, 'phone:1@pocket')).toMatchObject({ online: true });
    expect(device(v, 'tab:2@sofa')).toMatchObject({ hasToken: true });

    const id = `msg:1@${msgId('')}`;
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d.targets.map((t) => `${t.device}/${t.via}`).sort()).toEqual(['phone:1@pocket/mobile', 'tab:2@sofa/fcm']);
    expect(desk.received).toEqual([]);

    expect((await node.http('DELETE', `/v1/users/${enc(user)}/devices/${enc('tab:2@sofa')}`)).status).toBe(204);
    await viewUntil(node, user, (x) => device(x, 'tab:2@sofa') === undefined, 'device removed');
  });
});

// --- presence TTL ------------------------------------------------------------------------------------------------

describe('a PC session silent for SWITCHBOARD_PRESENCE_TTL_MS is stale', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNode({ SWITCHBOARD_PRESENCE_TTL_MS: '1000' });
  });

  it('stale PC -> reason "stale", the phone gets it; a ping makes the PC active again', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'active');
    const mob = await phone(node, user, 'mob', 'ios');
    // While fresh, the PC gets it.
    const fresh = msgId('fresh');
    await accept(node, { id: fresh, to: user });
    await desk.message(fresh);

    // Silence: the node itself reports the PC inactive for staleness, then routes by it.
    await viewUntil(node, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'stale', 'PC stale', 5000);
    const id = msgId('stale');
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(d).toMatchObject({ route: 'mobile', reason: 'stale' });
    expect(d.targets.map((t) => t.via)).toEqual(['mobile']);
    expect(desk.received).toEqual([fresh]);

    // Any JSON frame refreshes the session; its last report was "active", so it is active again.
    desk.send({ type: 'ping' });
    await desk.client.next((f) => f.type === 'pong');
    await viewUntil(node, user, (v) => v.pc.state === 'active', 'PC active again after ping');
    const back = msgId('back');
    await accept(node, { id: back, to: user });
    await desk.message(back);
    const d2 = await awaitDecision(node, user, back);
    expect(d2).toMatchObject({ route: 'pc', reason: 'pc_active' });
  });

  it('a PC that keeps pinging within the TTL stays active', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'active');
    const started = Date.now();
    // Ping every 300 ms for 2.5 TTLs; the state must stay active throughout.
    for (let next = started; next - started < 2500; next += 300) {
      await until(() => Date.now() >= next, 1000, 'next ping time');
      desk.send({ type: 'ping' });
      await desk.client.next((f) => f.type === 'pong');
      expect((await userView(node, user)).pc.state).toBe('active');
    }
    const id = msgId();
    await accept(node, { id, to: user });
    await desk.message(id);
    expect((await awaitDecision(node, user, id)).reason).toBe('pc_active');
  });
});

// --- ack timeout fallback ----------------------------------------------------------------------------------------

describe('a direct delivery not acked within SWITCHBOARD_ACK_TIMEOUT_MS falls back', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNode({ SWITCHBOARD_ACK_TIMEOUT_MS: '300' });
  });

  it('PC active but never acks -> the message then takes the mobile path', async () => {
    const user = uniqueUser();
    const desk = await pc(node, user, 'desk', 'active', { autoAck: false });
    const mob = await phone(node, user, 'mob', 'android');
    const id = msgId();
    await accept(node, { id, to: user });
    await desk.message(id);
    await mob.message(id);
    const all = await decisionsFor(node, user, id);
    const first = all.find((d) => d.route === 'pc');
    expect(first, JSON.stringify(all)).toBeDefined();
    expect(target(first!, 'desk')?.outcome).toBe('ack_timeout');
    const fallback = await awaitDecision(node, user, id, (d) => d.reason === 'ack_timeout' && settled(d));
    expect(fallback.route).toBe('mobile');
    expect(fallback.targets).toEqual([expect.objectContaining({ device: 'mob', via: 'mobile', outcome: 'acked' })]);
    // At most once per route decision: the PC got it once, the phone once.
    expect(desk.count(id)).toBe(1);
    expect(mob.count(id)).toBe(1);
  });

  it('phone direct delivery not acked -> its vendor push', async () => {
    const user = uniqueUser();
    const mob = await phone(node, user, 'mob', 'ios', { autoAck: false });
    mob.send({ type: 'register', os: 'ios', token: TOKENS.ios });
    await mob.client.next((f) => f.type === 'registered');
    const id = msgId();
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, (x) => x.targets.some((t) => t.via === 'apns' && t.outcome !== undefined));
    expect(d.route).toBe('mobile');
    expect(target(d, 'mob')).toMatchObject({ via: 'apns', outcome: 'failed' });
    const direct = (await decisionsFor(node, user, id)).flatMap((x) => x.targets).find((t) => t.via === 'mobile');
    expect(direct).toMatchObject({ device: 'mob', outcome: 'ack_timeout' });
    expect(mob.count(id)).toBe(1);
  });

  it('an ack in time stops the fallback', async () => {
    const user = uniqueUser();
    const mob = await phone(node, user, 'mob', 'ios');
    mob.send({ type: 'register', os: 'ios', token: TOKENS.ios });
    await mob.client.next((f) => f.type === 'registered');
    const id = msgId();
    await accept(node, { id, to: user });
    await mob.message(id);
    const d = await awaitDecision(node, user, id, settled);
    expect(target(d, 'mob')).toMatchObject({ via: 'mobile', outcome: 'acked' });
    // Outlive the ack timeout by a marker sent after it: still no push decision for the acked one.
    await until(async () => Date.now() - d.at > 600, 3000, 'ack timeout passed');
    expect((await decisionsFor(node, user, id)).flatMap((x) => x.targets).map((t) => t.via)).toEqual(['mobile']);
  });
});

// --- push delay --------------------------------------------------------------------------------------------------

describe('SWITCHBOARD_PUSH_DELAY_MS: a vendor push waits, cancelled if the PC turns active', () => {
  let node: NodeProcess;
  beforeAll(async () => {
    node = await startNode({ SWITCHBOARD_PUSH_DELAY_MS: '2000' });
  });

  it('PC turns active before the delay -> the PC gets the message, the push is cancelled', async () => {
    const user = uniqueUser();
    await putToken(node, user, 'mob', 'ios', TOKENS.ios);
    const desk = await pc(node, user, 'desk', 'idle');
    const id = msgId();
    await accept(node, { id, to: user });
    const d = await awaitDecision(node, user, id);
    expect(d).toMatchObject({ route: 'mobile', reason: 'idle' });
    expect(target(d, 'mob')).toMatchObject({ via: 'apns' });
    expect(target(d, 'mob')?.outcome).toBeUndefined();
    expect(Date.now() - d.at).toBeLessThan(1500);

    desk.send({ type: 'presence', state: 'active' });
    await desk.message(id, 3000);
    const t = await awaitOutcome(node, user, id, 'mob', 3000);
    expect(t.outcome).toBe('cancelled');
    expect(desk.count(id)).toBe(1);
  });

  it('PC stays inactive -> the push goes out after the delay', async () => {
    const user = uniqueUser();
    await putToken(node, user, 'mob', 'ios', TOKENS.ios);
    const desk = await pc(node, user, 'desk', 'idle');
    const id = msgId();
    const sentAt = Date.now();
    await accept(node, { id, to: user });
    const d = await awaitDecision(node, user, id);
    expect(target(d, 'mob')?.outcome).toBeUndefined();
    const t = await awaitOutcome(node, user, id, 'mob', 5000);
    expect(t.outcome).toBe('failed');
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(1900);
    expect(desk.received).toEqual([]);
  });
});
