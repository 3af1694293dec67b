import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { TestClient, signToken, until, type Claims } from './support/ws-client.js';

/**
 * PROTOCOL.md sections 2 and 3 against the real node in a child process: every close code, and bad input
 * answered with a clear error while the process keeps serving and another user's session is unaffected.
 */
describe('gateway against the real node', () => {
  let node: NodeProcess;
  let bystander: TestClient;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    node = await NodeProcess.start({ env: { SWITCHBOARD_FRAME_RATE: '50', SWITCHBOARD_SEND_BUFFER_BYTES: '65536' } });
    bystander = await TestClient.session(node.wsUrl, node.jwtSecret, { sub: 'bystander', dev: 'pc', kind: 'pc' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    bystander?.close();
    await node?.stop();
    await node?.removeData();
  });

  const connect = async () => { const c = await TestClient.connect(node.wsUrl); clients.push(c); return c; };
  const session = async (claims: Claims) => { const c = await TestClient.session(node.wsUrl, node.jwtSecret, claims); clients.push(c); return c; };
  /** The process still serves, and the bystander's session still works. */
  const stillServing = async () => {
    expect((await node.http('GET', '/healthz', undefined, { auth: false })).status).toBe(200);
    bystander.send({ type: 'ping' });
    expect(await bystander.next((f) => f.type === 'pong')).toEqual({ type: 'pong' });
  };
  const closesMetric = async (code: number) => {
    const text = (await node.http('GET', '/metrics', undefined, { auth: false })).body as string;
    return Number(new RegExp(`switchboard_ws_closes_total\\{code="${code}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };

  describe('close codes', () => {
    const cases: [string, (c: TestClient) => Promise<void>, number][] = [
      ['a frame over 64 KiB', async (c) => c.send({ type: 'hello', token: 'x'.repeat(65 * 1024) }), 1009],
      ['a non-hello first frame', async (c) => c.send({ type: 'ping' }), 4400],
      ['a binary frame', async (c) => c.ws.send(Buffer.from([1, 2, 3])), 4400],
      ['a missing token', async (c) => c.send({ type: 'hello' }), 4401],
      ['a forged token', async (c) => c.send({ type: 'hello', token: await signToken('not-the-secret-0123456789', { sub: 'u', dev: 'd', kind: 'pc' }) }), 4401],
      ['an expired token', async (c) => c.send({ type: 'hello', token: await signToken(node.jwtSecret, { sub: 'u', dev: 'd', kind: 'pc' }, -60) }), 4401],
      ['a token with an id over 128 characters', async (c) => c.send({ type: 'hello', token: await signToken(node.jwtSecret, { sub: 'u'.repeat(129), dev: 'd', kind: 'pc' }) }), 4401],
    ];
    /** The error frame each refusal sends before its close (README "Error codes"). */
    const refusalCode: Record<number, string> = { 1009: 'frame_too_large', 4400: 'protocol_violation', 4401: 'unauthorized', 4403: 'forbidden', 4429: 'rate_limited' };
    /** The close, after an error frame with the code it stands for (the close reason is the frame's message, or starts it). */
    const refused = async (c: TestClient, code: number) => {
      const closed = await c.closed;
      expect(closed.code).toBe(code);
      const errors = c.frames.filter((f) => f.type === 'error');
      expect(errors.map((f) => f.code)).toEqual([refusalCode[code]]);
      if (code !== 1009) expect(errors[0].message).toBe(closed.reason);
    };
    it.each(cases)('closes on %s, after an error frame with its code', async (_, act, code) => {
      const c = await connect();
      await act(c);
      await refused(c, code);
      await stillServing();
    });

    it('a frame over 64 KiB in a session: error frame frame_too_large, then 1009 "frame too large"', async () => {
      const c = await session({ sub: 'fiona', dev: 'pc', kind: 'pc' });
      c.send({ type: 'ping', pad: 'x'.repeat(65 * 1024) });
      expect(await c.next()).toMatchObject({ type: 'error', code: 'frame_too_large' });
      expect(await c.closed).toEqual({ code: 1009, reason: 'frame too large' });
      await stillServing();
    });

    it('closes 4408 when no hello comes within 5 s', async () => {
      const c = await connect();
      const closed = await c.closed;
      expect(closed.code).toBe(4408);
      await stillServing();
    }, 15_000);

    it('closes 4400 on a second hello and 4403 on a frame claiming another user or device', async () => {
      const a = await session({ sub: 'carol', dev: 'pc1', kind: 'pc' });
      a.send({ type: 'hello', token: await signToken(node.jwtSecret, { sub: 'carol', dev: 'pc1', kind: 'pc' }) });
      await refused(a, 4400);
      const b = await session({ sub: 'carol', dev: 'pc1', kind: 'pc' });
      b.send({ type: 'ack', id: 'm1', user: 'bystander' });
      await refused(b, 4403);
      const m = await session({ sub: 'carol', dev: 'phone', kind: 'mobile', os: 'android' });
      m.send({ type: 'register', os: 'android', token: 't', device: 'someone-elses' });
      await refused(m, 4403);
      await stillServing();
    });

    it('closes 4409 when the same user and device connect again', async () => {
      const first = await session({ sub: 'dave', dev: 'pc', kind: 'pc' });
      const second = await session({ sub: 'dave', dev: 'pc', kind: 'pc' });
      expect((await first.closed).code).toBe(4409);
      second.send({ type: 'ping' });
      expect(await second.next((f) => f.type === 'pong')).toEqual({ type: 'pong' });
    });

    it('closes 4429 when a client sends faster than SWITCHBOARD_FRAME_RATE', async () => {
      const c = await session({ sub: 'erin', dev: 'pc', kind: 'pc' });
      for (let i = 0; i < 400; i++) c.send({ type: 'ping' });
      await refused(c, 4429);
      await stillServing();
    });
  });

  describe('bad frames get an error frame and the connection stays', () => {
    it.each([
      ['malformed JSON', '{"type":"ping"', 'bad_json'],
      ['wrong types', JSON.stringify({ type: 'presence', state: 7 }), 'invalid_request'],
      ['an unknown frame type', JSON.stringify({ type: 'teleport' }), 'unknown_frame'],
      ['a frame the kind may not send', JSON.stringify({ type: 'register', os: 'ios', token: 'a'.repeat(64) }), 'frame_not_allowed'],
    ])('%s', async (_, text, code) => {
      const c = await session({ sub: 'frank', dev: `pc-${code}`, kind: 'pc' });
      c.send(text);
      const error = await c.next();
      expect(error).toMatchObject({ type: 'error', code });
      expect(error.message.length).toBeGreaterThan(5);
      if (code === 'bad_json') expect(error.message).toBe('frame is not valid JSON');
      c.send({ type: 'ping' });
      expect(await c.next()).toEqual({ type: 'pong' });
      await stillServing();
    });
  });

  describe('HTTP bad input', () => {
    it('refuses unauthenticated calls with 401', async () => {
      expect(await node.http('POST', '/v1/messages', { id: 'm', to: 'u' }, { auth: false })).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
      expect((await node.http('GET', '/v1/users/u', undefined, { auth: 'wrong-key-0123456789' })).status).toBe(401);
      // Without the key, a path that is no route says nothing more than 401 either.
      expect((await node.http('GET', '/v1/no-such-route', undefined, { auth: false })).status).toBe(401);
      await stillServing();
    });

    it('answers a plain GET /v1/ws 400 "needs a WebSocket upgrade" with or without the API key (clients use the hello JWT)', async () => {
      for (const auth of [false, undefined] as const) {
        expect(await node.http('GET', '/v1/ws', undefined, { auth })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: expect.stringContaining('needs a WebSocket upgrade') } } });
      }
      expect((await node.http('POST', '/v1/ws', undefined, { auth: false })).status).toBe(405);
    });

    it('refuses a body over 64 KiB with 413, malformed JSON with 400, and keeps serving', async () => {
      // Section 3 names payload_too_large for a message that could never be pushed, over our body limit or not.
      const big = await node.send({ id: 'big', to: 'u', text: 'x'.repeat(30_000), data: { a: 'y'.repeat(40_000) } });
      expect(big).toMatchObject({ status: 413, body: { error: { code: 'payload_too_large' } } });
      const longText = await node.send({ id: 'long', to: 'u', text: 'x'.repeat(70_000) });
      expect(longText).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
      expect(await node.http('POST', '/v1/messages', undefined, { raw: '{"id":' })).toMatchObject({ status: 400, body: { error: { code: 'bad_json' } } });
      expect((await node.send({ id: 'ok-after-bad', to: 'nobody' })).status).toBe(202);
      await stillServing();
    });

    it('refuses ids over 128 characters, in bodies and in paths, naming the field', async () => {
      const body = await node.send({ id: 'm', to: 'u'.repeat(129) });
      expect(body.status).toBe(400);
      expect(body.body.error.message).toMatch(/\bto must be/);
      const path = await node.http('PUT', `/v1/users/${'u'.repeat(129)}/devices/d`, { os: 'ios', token: 't' });
      expect(path.status).toBe(400);
      expect(path.body.error.message).toMatch(/\buser must be/);
      await stillServing();
    });

    it('stores a device for a user id with reserved characters', async () => {
      const res = await node.http('PUT', `/v1/users/${encodeURIComponent('grace@example.com')}/devices/${encodeURIComponent('phone:1')}`, { os: 'android', token: 'fcm-token' });
      expect(res).toMatchObject({ status: 200, body: { user: 'grace@example.com', device: 'phone:1', os: 'android', hasToken: true } });
      const view = await node.http('GET', `/v1/users/${encodeURIComponent('grace@example.com')}`);
      expect(view.status).toBe(200);
      expect(view.body.devices).toEqual([expect.objectContaining({ device: 'phone:1', os: 'android', hasToken: true })]);
      expect((await node.http('DELETE', `/v1/users/${encodeURIComponent('grace@example.com')}/devices/${encodeURIComponent('phone:1')}`)).status).toBe(204);
    });
  });

  it('closes a client that does not read (1013) instead of buffering without bound', async () => {
    const slow = await session({ sub: 'heidi', dev: 'pc', kind: 'pc' });
    slow.send({ type: 'presence', state: 'active' });
    slow.ws.pause();
    const before = await closesMetric(1013);
    let sent = 0;
    await until(async () => {
      // Big frames from text and title: data alone over 4096 bytes is refused (413 payload_too_large, issue 9).
      const batch = Array.from({ length: 10 }, () => node.send({ id: `slow-${sent++}`, to: 'heidi', text: 'x'.repeat(32_000), title: 't'.repeat(1_000) }));
      for (const res of await Promise.all(batch)) expect(res.status).toBe(202);
      return (await closesMetric(1013)) > before;
    }, 25_000, 'the slow client to be closed');
    expect(sent).toBeLessThan(2000);
    await stillServing();
  }, 30_000);
});
