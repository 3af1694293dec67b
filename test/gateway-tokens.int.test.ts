import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestClient, until, type Claims } from './support/ws-client.js';
import { JWT_SECRET, startGateway, type GatewayFixture } from './gateway-fixture.js';

/**
 * Issue 9 at the edge, over real loopback HTTP and WebSockets against an in-process gateway: what the vendors
 * refuse is refused before it is accepted (PROTOCOL.md v1.1 section 3), token rules for PUT and `register`,
 * and the `unregister` frame.
 */

const IOS = 'a1'.repeat(32);
const KEYS = { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' };
const web = (endpoint: string) => JSON.stringify({ endpoint, keys: KEYS });

describe('gateway edge rules (issue 9)', () => {
  let g: GatewayFixture;
  const open: TestClient[] = [];
  beforeEach(async () => { g = await startGateway(); });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await g.gateway.close();
  });
  const session = async (claims: Claims) => { const c = await TestClient.session(g.wsUrl, JWT_SECRET, claims); open.push(c); return c; };
  const post = (body: unknown) => g.http('POST', '/v1/messages', { body: typeof body === 'string' ? body : JSON.stringify(body) });
  const put = (device: string, body: unknown) => g.http('PUT', `/v1/users/alice/devices/${device}`, { body: JSON.stringify(body) });

  describe('POST /v1/messages', () => {
    it.each(['from', 'message_type', 'notification', 'google.c.a.e', 'gcm.notification.sound', 'messageId', 'sender'])('refuses data.%s with 400 invalid_field naming it', async (key) => {
      const res = await post({ id: 'm1', to: 'bob', data: { [key]: 'x' } });
      expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', message: expect.stringContaining(`data.${key}`) } } });
      expect(g.accepted).toEqual([]);
    });

    it('refuses a __proto__ data key instead of dropping it', async () => {
      const res = await post('{"id":"m1","to":"bob","data":{"__proto__":"x","ok":"y"}}');
      expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', message: expect.stringContaining('__proto__') } } });
      expect(g.accepted).toEqual([]);
    });

    it('refuses a body that is not valid UTF-8 instead of turning it into U+FFFD', async () => {
      const bytes = Buffer.from(JSON.stringify({ id: 'm1', to: 'bob', text: 'caf_' }));
      bytes[bytes.indexOf('_')] = 0xe9; // Latin-1 "é": not UTF-8
      const res = await fetch(`${g.url}/v1/messages`, { method: 'POST', body: bytes, headers: { authorization: 'Bearer in-process-api-key-0123456789', 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_field', message: expect.stringContaining('UTF-8') } });
      expect(g.accepted).toEqual([]);
    });

    it('refuses title and data that alone exceed the 4096-byte push payload with 413 payload_too_large', async () => {
      const data = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'x'.repeat(900)]));
      expect(await post({ id: 'm1', to: 'bob', data })).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect(g.accepted).toEqual([]);
    });

    it('accepts urgent and carries it on the message', async () => {
      expect((await post({ id: 'm1', to: 'bob', text: 'wake up', urgent: true })).status).toBe(202);
      expect(g.accepted).toMatchObject([{ id: 'm1', urgent: true }]);
    });
  });

  describe('PUT /v1/users/{u}/devices/{d}', () => {
    it.each([
      ['an ios token that is not hex', { os: 'ios', token: 'zz' }],
      ['an android token with CR/LF', { os: 'android', token: 'tok\r\nx-evil: 1' }],
      ['an android token with NUL', { os: 'android', token: 'tok\u0000' }],
      ['a web token that is not JSON', { os: 'web', token: 'not json' }],
      ['a web endpoint on loopback', { os: 'web', token: web('https://127.0.0.1/push') }],
      ['a web endpoint on a private address', { os: 'web', token: web('https://10.0.0.5/push') }],
      ['a web endpoint on another host', { os: 'web', token: web('https://attacker.example/push') }],
      ['a web endpoint over http', { os: 'web', token: web('http://fcm.googleapis.com/fcm/send/x') }],
      ['an app that is not configured', { os: 'ios', token: IOS, app: 'gamma' }],
    ])('refuses %s with 400 invalid_field', async (_, body) => {
      const res = await put('phone', body);
      expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field' } } });
      expect(g.registry.devices.size).toBe(0);
      expect(g.owned).toEqual([]);
    });

    it.each([
      ['ios', { os: 'ios', token: IOS }],
      ['android with a configured app', { os: 'android', token: 'fcm:APA91b-x_y.z', app: 'beta' }],
      ['web on FCM', { os: 'web', token: web('https://fcm.googleapis.com/fcm/send/abc') }],
      ['web on Mozilla', { os: 'web', token: web('https://updates.push.services.mozilla.com/wpush/v2/abc') }],
      ['web on Apple', { os: 'web', token: web('https://web.push.apple.com/abc') }],
      ['web on WNS', { os: 'web', token: web('https://wns2-par02p.notify.windows.com/w/?token=abc') }],
    ])('stores %s', async (_, body) => {
      expect((await put('phone', body)).status).toBe(200);
    });
  });

  describe('WebSocket register and unregister', () => {
    const phone: Claims = { sub: 'alice', dev: 'phone', kind: 'mobile', os: 'android' };

    it('answers a register with a bad token, an unknown app or another os than the JWT\'s with an error frame; the connection stays', async () => {
      const c = await session(phone);
      for (const frame of [
        { type: 'register', os: 'android', token: 'bad token\n' },
        { type: 'register', os: 'android', token: 'fcm-token', app: 'gamma' },
        { type: 'register', os: 'ios', token: IOS },
      ]) {
        c.send(frame);
        expect(await c.next((f) => f.type === 'error')).toMatchObject({ type: 'error', code: 'invalid_field' });
      }
      c.send({ type: 'ping' });
      expect(await c.next((f) => f.type === 'pong')).toEqual({ type: 'pong' });
      expect(g.registry.devices.size).toBe(0);
      c.send({ type: 'register', os: 'android', token: 'fcm-token' });
      expect(await c.next((f) => f.type === 'registered')).toEqual({ type: 'registered' });
    });

    it('unregister removes the device\'s token and answers unregistered', async () => {
      const c = await session(phone);
      c.send({ type: 'register', os: 'android', token: 'fcm-token' });
      await c.next((f) => f.type === 'registered');
      c.send({ type: 'unregister' });
      expect(await c.next((f) => f.type === 'unregistered')).toEqual({ type: 'unregistered' });
      expect(g.registry.devices.get('alice/phone')?.token).toBeUndefined();
    });

    it('a mobile session opening counts as its token being seen', async () => {
      await session(phone);
      await until(() => g.registry.seenCalls.length === 1);
      expect(g.registry.seenCalls).toEqual(['alice/phone']);
      await session({ sub: 'alice', dev: 'laptop', kind: 'pc' });
      expect(g.registry.seenCalls).toEqual(['alice/phone']);
    });
  });
});
