import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_SEND_READ_BYTES } from '../protocol/index.js';
import { API_KEY, JWT_SECRET, startGateway, type GatewayFixture } from './gateway-fixture.js';
import { TestClient } from './support/ws-client.js';

/**
 * The answers PROTOCOL.md section 3 names, over real loopback HTTP and WebSockets against an in-process gateway:
 * 400 `invalid_field` for every push token that does not fit its OS (PUT and the `register` frame alike), 413
 * `payload_too_large` for a message that could never be pushed whatever our own limits also say, and `text/plain`
 * bodies (what `fetch` sends for a string) taken as JSON on the keyed calls.
 */

const IOS = 'a1'.repeat(32);
const SUBSCRIPTION = {
  endpoint: 'https://fcm.googleapis.com/fcm/send/abc',
  keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' },
};
const WEB = JSON.stringify(SUBSCRIPTION);

const MISFITS: [string, string, unknown][] = [
  ['ios', 'absent', undefined],
  ['ios', 'a number', 42],
  ['ios', 'empty', ''],
  ['ios', '201 hex digits', 'a'.repeat(201)],
  ['android', 'of 4097 characters', 'x'.repeat(4097)],
  ['android', 'empty', ''],
  ['android', 'an object', { token: 'fcm-token' }],
  ['android', 'with a slash', 'fcm/token'],
  ['harmony', 'of 4097 characters', 'h'.repeat(4097)],
  ['harmony', 'null', null],
  ['web', 'sent as a JSON object, not a JSON string', SUBSCRIPTION],
  ['web', 'empty', ''],
  ['web', 'of 4097 characters', WEB + ' '.repeat(4097 - WEB.length)],
];

/** `data` of n keys of about 10 bytes each. */
const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'vvvv']));

/** One POST with exactly these headers (fetch would add its own content type). */
function post(port: number, path: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { authorization: `Bearer ${API_KEY}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('refusal codes of section 3 at the edge', () => {
  let g: GatewayFixture;
  const open: TestClient[] = [];
  beforeEach(async () => { g = await startGateway({ SWITCHBOARD_FRAME_RATE: '10000' }); });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await g.gateway.close();
  });
  const send = (body: unknown) => g.http('POST', '/v1/messages', { body: JSON.stringify(body) });

  describe('push tokens that do not fit their OS: 400 invalid_field naming token', () => {
    it.each(MISFITS)('PUT …/devices/{d}: %s token %s', async (os, _, token) => {
      const res = await g.http('PUT', '/v1/users/alice/devices/phone', { body: JSON.stringify({ os, token }) });
      expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', message: expect.stringMatching(/\btoken must be\b/) } } });
      expect(g.registry.devices.size).toBe(0);
      expect(g.owned).toEqual([]);
    });

    it('an app that cannot be a configured one is invalid_field too', async () => {
      for (const app of [7, '', 'a'.repeat(129)]) {
        const res = await g.http('PUT', '/v1/users/alice/devices/phone', { body: JSON.stringify({ os: 'ios', token: IOS, app }) });
        expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_field', message: expect.stringMatching(/\bapp must be\b/) } } });
      }
    });

    it.each(['ios', 'android', 'harmony', 'web'] as const)('register frame of a %s session: the same tokens get an invalid_field error frame; the connection stays', async (os) => {
      const c = await TestClient.session(g.wsUrl, JWT_SECRET, { sub: 'alice', dev: `phone-${os}`, kind: 'mobile', os });
      open.push(c);
      for (const [, what, token] of MISFITS.filter(([o]) => o === os)) {
        c.send({ type: 'register', os, token });
        expect({ what, frame: await c.next((f) => f.type === 'error') }).toMatchObject({ what, frame: { type: 'error', code: 'invalid_field', message: expect.stringMatching(/\btoken must be\b/) } });
      }
      expect(g.registry.devices.size).toBe(0);
      const fits = { ios: IOS, android: 'x'.repeat(4096), harmony: 'h'.repeat(4096), web: WEB }[os];
      c.send({ type: 'register', os, token: fits });
      expect(await c.next((f) => f.type === 'registered' || f.type === 'error')).toEqual({ type: 'registered' });
    });
  });

  describe('POST /v1/messages: 413 payload_too_large before our own limits', () => {
    it('a title of 4096 characters and data of 400 small keys are 413 payload_too_large; within the payload they stay 400', async () => {
      expect(await send({ id: 'm1', to: 'bob', title: 'x'.repeat(4096) })).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect(await send({ id: 'm2', to: 'bob', data: keys(400) })).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect(await send({ id: 'm3', to: 'bob', title: 'x'.repeat(1025) })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: expect.stringContaining('title') } } });
      expect(await send({ id: 'm4', to: 'bob', data: keys(65) })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: expect.stringContaining('data') } } });
      expect(g.accepted).toEqual([]);
    });

    it('a body over 64 KiB: 413 payload_too_large when its message could never be pushed, body_too_large when it is mostly text', async () => {
      expect(await send({ id: 'm1', to: 'bob', title: 'x'.repeat(70_000) })).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect(await send({ id: 'm2', to: 'bob', text: 'x'.repeat(30_000), data: { a: 'y'.repeat(40_000) } })).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      expect(await send({ id: 'm3', to: 'bob', title: 'hi', text: 'x'.repeat(70_000) })).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
      // Past MAX_SEND_READ_BYTES the body is not read: refused on its declared length.
      const huge = await post(g.port, '/v1/messages', '', { 'content-type': 'application/json', 'content-length': String(MAX_SEND_READ_BYTES + 1) });
      expect(huge).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
      expect(g.accepted).toEqual([]);
      expect((await send({ id: 'ok', to: 'bob', title: 'fits' })).status).toBe(202);
    });

    it('POST /v1/messages/batch answers each message the same way', async () => {
      const res = await g.http('POST', '/v1/messages/batch', { body: JSON.stringify({ messages: [
        { id: 'a', to: 'bob', title: 'x'.repeat(4096) },
        { id: 'b', to: 'bob', data: keys(400) },
        { id: 'c', to: 'bob', title: 'x'.repeat(1025) },
        { id: 'd', to: 'bob', title: 'fits' },
        // The 70,000-character text that is body_too_large as a single send (above) is so in a batch too.
        { id: 'e', to: 'bob', title: 'hi', text: 'x'.repeat(70_000) },
      ] }) });
      expect(res.status).toBe(200);
      expect(res.body.results).toEqual([
        { id: 'a', error: { code: 'payload_too_large', message: expect.any(String) } },
        { id: 'b', error: { code: 'payload_too_large', message: expect.any(String) } },
        { id: 'c', error: { code: 'invalid_request', message: expect.stringContaining('title') } },
        { id: 'd', status: 'accepted' },
        { id: 'e', error: { code: 'body_too_large', message: expect.stringContaining('the limit is 65536') } },
      ]);
      expect(g.accepted.map((m) => m.id)).toEqual(['d']);
    });

    it('a policy or device body with a long bad value is 400 invalid_field naming it, as a short one is (bodies up to 64 KiB are read)', async () => {
      const put = (path: string, body: unknown) => g.http('PUT', path, { body: JSON.stringify(body) });
      for (const body of [{ mobile: 'x'.repeat(5000) }, { mobile: 'when_away', quietHours: { start: '22:00', end: '07:00', tz: 'Z'.repeat(5000) } }]) {
        expect(await put('/v1/users/alice/policy', body)).toMatchObject({ status: 400, body: { error: { code: 'invalid_field' } } });
      }
      expect(await put('/v1/users/alice/devices/phone', { os: 'android', token: 'a'.repeat(60_000) })).toMatchObject({ status: 400, body: { error: { code: 'invalid_field' } } });
      expect(await put('/v1/users/alice/policy', { mobile: 'x'.repeat(70_000) })).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
    });
  });

  describe('any declared type is read as JSON on the keyed calls (section 3 lists no 415)', () => {
    it('fetch with a string body (Content-Type text/plain;charset=UTF-8) is accepted: 202', async () => {
      const res = await fetch(`${g.url}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ id: 'm1', to: 'bob', text: 'hi' }) });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ id: 'm1', status: 'accepted' });
      expect(g.accepted).toMatchObject([{ id: 'm1', text: 'hi' }]);
    });

    it('every keyed call with a body takes it: batch, devices, policy, read', async () => {
      const plain = { 'content-type': 'text/plain' };
      expect((await post(g.port, '/v1/messages/batch', JSON.stringify({ messages: [{ id: 'b1', to: 'bob' }] }), plain)).body).toEqual({ results: [{ id: 'b1', status: 'accepted' }] });
      expect((await post(g.port, '/v1/messages', JSON.stringify({ id: 'b2', to: 'bob' }), { 'content-type': 'Text/Plain; charset=utf-8' })).status).toBe(202);
      expect((await g.http('PUT', '/v1/users/alice/devices/phone', { body: JSON.stringify({ os: 'ios', token: IOS }), headers: plain })).status).toBe(200);
      expect((await g.http('PUT', '/v1/users/alice/policy', { body: JSON.stringify({ mobile: 'always' }), headers: plain })).status).toBe(200);
      // Taken, then refused by the read decoder for its missing ids (not 415).
      expect((await g.http('POST', '/v1/users/alice/read', { body: '{}', headers: plain })).body.error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('ids') });
    });

    it('curl -d\'s form type and others too; a body that is not JSON is 400 bad_json; the playground API (no key) still refuses them', async () => {
      for (const [i, type] of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/html', 'text/json'].entries()) {
        expect(await post(g.port, '/v1/messages', JSON.stringify({ id: `typed${i}`, to: 'bob' }), { 'content-type': type })).toMatchObject({ status: 202, body: { status: 'accepted' } });
      }
      expect(await post(g.port, '/v1/messages', 'id=m&to=bob', { 'content-type': 'application/x-www-form-urlencoded' })).toMatchObject({ status: 400, body: { error: { code: 'bad_json' } } });
      expect(g.accepted).toHaveLength(4);
      g.accepted.length = 0;
      const body = JSON.stringify({ text: 'hi' });
      expect((await post(g.port, '/playground/api/send', body, { 'content-type': 'text/plain' })).body.error.code).toBe('unsupported_media_type');
      expect((await post(g.port, '/playground/api/send', body, { 'content-type': 'application/json' })).status).toBe(202);
      expect(g.accepted).toHaveLength(1);
    });
  });
});
