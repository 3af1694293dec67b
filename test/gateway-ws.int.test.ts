import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLOSE_GRACE_MS, MAX_CONSECUTIVE_BAD_FRAMES } from '../gateway/client-session.js';
import { WS_MAX_PAYLOAD_BYTES } from '../gateway/server.js';
import { HELLO_TIMEOUT_MS, MAX_FRAME_BYTES, type OwnerMessage } from '../protocol/index.js';
import { TestClient, signToken, until, type Claims } from './support/ws-client.js';
import { JWT_SECRET, startGateway, type GatewayFixture } from './gateway-fixture.js';

/** A WebSocket upgrade the gateway refuses: its HTTP status and JSON body. */
function refusedUpgrade(wsUrl: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(wsUrl.replace(/^ws/, 'http'), { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('upgrade', () => reject(new Error('the upgrade was taken')));
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Section 2 over real loopback WebSockets against an in-process gateway; gateway timers run on a manual clock. */
describe('gateway WebSocket sessions', () => {
  let g: GatewayFixture;
  const open: TestClient[] = [];
  beforeEach(async () => { g = await startGateway({ SWITCHBOARD_FRAME_RATE: '100', SWITCHBOARD_SEND_BUFFER_BYTES: '65536' }); });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await g.gateway.close();
  });

  const pc: Claims = { sub: 'alice', dev: 'laptop', kind: 'pc' };
  const phone: Claims = { sub: 'alice', dev: 'phone', kind: 'mobile', os: 'ios' };
  const session = async (claims: Claims) => { const c = await TestClient.session(g.wsUrl, JWT_SECRET, claims); open.push(c); return c; };
  const connect = async () => { const c = await TestClient.connect(g.wsUrl); open.push(c); return c; };
  const ofType = (type: OwnerMessage['type']) => g.owned.filter((m) => m.type === type);
  /** Another user's session must be untouched by whatever a test does to a bad client. */
  const assertAlive = async (c: TestClient) => {
    c.send({ type: 'ping' });
    expect(await c.next((f) => f.type === 'pong')).toEqual({ type: 'pong' });
  };

  it('welcomes a client and tells the owner of the open and the close', async () => {
    const c = await session(phone);
    expect(ofType('session_open')).toEqual([{
      type: 'session_open', user: 'alice', device: 'phone', kind: 'mobile', os: 'ios',
      session: { node: 'gw-test', id: expect.any(String) }, at: expect.any(Number), openedAt: expect.any(Number),
    }]);
    expect(await g.metric('switchboard_sessions', { kind: 'mobile' })).toBe(1);
    c.close();
    await until(() => ofType('session_close').length === 1);
    expect(ofType('session_close')[0]).toMatchObject({ user: 'alice', device: 'phone', sessionId: (ofType('session_open')[0] as { session: { id: string } }).session.id });
    expect(await g.metric('switchboard_sessions', { kind: 'mobile' })).toBe(0);
  });

  it('welcome carries the identity and heartbeat', async () => {
    const c = await connect();
    c.send({ type: 'hello', token: await signToken(JWT_SECRET, pc) });
    expect(await c.next()).toEqual({ type: 'welcome', user: 'alice', device: 'laptop', kind: 'pc', heartbeatMs: g.config.clientHeartbeatMs, idleAfterMs: 60_000 });
  });

  it('handles each frame type and delivers messages from the owner', async () => {
    const c = await session(phone);
    c.send({ type: 'presence', state: 'background' });
    c.send({ type: 'register', os: 'ios', token: 'ab'.repeat(32) });
    expect(await c.next()).toEqual({ type: 'registered' });
    c.send({ type: 'ack', id: 'm1' });
    await assertAlive(c);
    expect(g.owned.map((m) => m.type)).toEqual(['session_open', 'presence', 'device_put', 'touch', 'ack', 'touch']);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { type: 'message', id: 'm2', text: 'hi', ts: 1 } });
    expect(await c.message('m2')).toEqual({ type: 'message', id: 'm2', text: 'hi', ts: 1 });
  });

  it.each([
    ['malformed JSON', '{"type":', 'bad_json', /^frame is not valid JSON$/],
    ['a wrong type', JSON.stringify({ type: 'ack', id: 42 }), 'invalid_request', /\bid must be/],
    ['an unknown frame type', JSON.stringify({ type: 'subscribe' }), 'unknown_frame', /subscribe/],
    ['a frame not allowed for the kind', JSON.stringify({ type: 'register', os: 'ios', token: 'a'.repeat(64) }), 'frame_not_allowed', /register/],
    ['the other kind\'s presence', JSON.stringify({ type: 'presence', state: 'foreground' }), 'frame_not_allowed', /foreground/],
    ['a JSON array', '[1,2]', 'invalid_request', /frame must be/],
  ])('answers %s with an error frame; the connection stays', async (_, text, code, message) => {
    const bob = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const c = await session(pc);
    c.send(text);
    const error = await c.next();
    expect(error).toMatchObject({ type: 'error', code });
    expect(error.message).toMatch(message);
    await assertAlive(c);
    await assertAlive(bob);
    expect(await g.metric('switchboard_frame_errors_total', { code })).toBe(1);
  });

  const closeCases: [string, (c: TestClient) => Promise<void>, number][] = [
    ['no hello at all', async () => g.clock.advance(HELLO_TIMEOUT_MS), 4408],
    ['a non-hello first frame', async (c) => c.send({ type: 'ping' }), 4400],
    ['malformed JSON as first frame', async (c) => c.send('nope'), 4400],
    ['a binary frame', async (c) => c.ws.send(Buffer.from('{"type":"hello"}')), 4400],
    ['a hello without token', async (c) => c.send({ type: 'hello' }), 4401],
    ['a forged token', async (c) => c.send({ type: 'hello', token: await signToken('another-secret-0123456789', pc) }), 4401],
    ['an expired token', async (c) => c.send({ type: 'hello', token: await signToken(JWT_SECRET, pc, -10) }), 4401],
    ['a token without os for a mobile', async (c) => c.send({ type: 'hello', token: await signToken(JWT_SECRET, { sub: 'a', dev: 'b', kind: 'mobile' }) }), 4401],
    ['a frame over 64 KiB', async (c) => c.send({ type: 'hello', token: 'x'.repeat(64 * 1024) }), 1009],
  ];

  it.each([
    ['no token', { type: 'hello' }, 'token missing'],
    ['an empty token', { type: 'hello', token: '' }, 'token missing'],
    ['a token that is no string', { type: 'hello', token: 42 }, 'token must be a string'],
    ['a token of 9000 characters', { type: 'hello', token: 'x'.repeat(9000) }, 'token longer than 8192 characters'],
  ])('a hello with %s closes 4401 saying why', async (_, hello, reason) => {
    const c = await connect();
    c.send(hello);
    expect(await c.closed).toMatchObject({ code: 4401, reason });
  });

  it.each(closeCases)('closes on %s', async (_, act, code) => {
    const bob = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const c = await connect();
    await act(c);
    expect((await c.closed).code).toBe(code);
    await until(async () => (await g.metric('switchboard_ws_closes_total', { code: String(code) })) === 1);
    await assertAlive(bob);
    expect(ofType('session_open')).toHaveLength(1); // only bob's
  });

  it.each([
    ['before hello', false],
    ['in an open session', true],
  ])('a frame over 64 KiB %s: an error frame frame_too_large, then close 1009 "frame too large"', async (_, opened) => {
    const c = opened ? await session(pc) : await connect();
    c.send({ type: 'ping', pad: 'x'.repeat(MAX_FRAME_BYTES) });
    const error = await c.next();
    expect(error).toMatchObject({ type: 'error', code: 'frame_too_large' });
    expect(error.message).toMatch(/exceeds 64 KiB: \d+ bytes; the limit is 65536/);
    expect(await c.closed).toEqual({ code: 1009, reason: 'frame too large' });
    await until(async () => (await g.metric('switchboard_frame_errors_total', { code: 'frame_too_large' })) === 1);
  });

  it('a frame of exactly 64 KiB is taken; one over ws\'s backstop is closed 1009 by ws without reading it', async () => {
    const c = await session(pc);
    const frame = (n: number) => { const head = '{"type":"ping","pad":"'; return head + 'x'.repeat(n - head.length - 2) + '"}'; };
    c.send(frame(MAX_FRAME_BYTES));
    expect(await c.next()).toEqual({ type: 'pong' });
    const d = await session({ sub: 'dora', dev: 'pc', kind: 'pc' });
    d.send(frame(WS_MAX_PAYLOAD_BYTES + 1));
    expect((await d.closed).code).toBe(1009);
    await assertAlive(c);
  });

  it('answers register frames in the order they came, errors included, even when the first waits for the store', async () => {
    const c = await session(phone);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const put = g.registry.put.bind(g.registry);
    let puts = 0;
    g.registry.put = async (...args: Parameters<typeof put>) => { if (++puts === 1) await gate; return put(...args); };
    c.send({ type: 'register', os: 'ios', token: 'ab'.repeat(32) });               // waits for the gate
    c.send({ type: 'register', os: 'android', token: 'x'.repeat(20) });              // refused at once (os of the JWT)
    c.send({ type: 'register', os: 'ios', token: 'cd'.repeat(32) });                 // stored after the first
    c.send({ type: 'ping' });                                                         // not a register: not held back
    expect(await c.next()).toEqual({ type: 'pong' });
    release();
    expect(await c.next()).toEqual({ type: 'registered' });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'invalid_field', message: expect.stringContaining('os') });
    expect(await c.next()).toEqual({ type: 'registered' });
    expect(g.registry.devices.get('alice/phone')?.token).toBe('cd'.repeat(32));
  });

  it.each<[string, unknown, number]>([
    ['a second hello', { type: 'hello', token: 'x' }, 4400],
    ['a frame claiming another user', { type: 'ping', user: 'mallory' }, 4403],
    ['a frame claiming another device', { type: 'ack', id: 'm1', device: 'other' }, 4403],
  ])('closes an open session on %s', async (_, frame, code) => {
    const bob = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const c = await session(pc);
    c.send(frame);
    expect((await c.closed).code).toBe(code);
    await until(() => ofType('session_close').length === 1);
    await assertAlive(bob);
  });

  it('a frame naming its own user and device is fine', async () => {
    const c = await session(pc);
    c.send({ type: 'ping', user: 'alice', device: 'laptop' });
    expect(await c.next()).toEqual({ type: 'pong' });
  });

  it('replaces a session when the owner says so (4409)', async () => {
    const first = await session(pc);
    const second = await session(pc);
    expect((await first.closed).code).toBe(4409);
    await assertAlive(second);
  });

  it('closes a client over its frame rate (4429)', async () => {
    const bob = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const c = await session(pc);
    for (let i = 0; i < 300; i++) c.send({ type: 'ack', id: `m${i}` });
    expect((await c.closed).code).toBe(4429);
    expect(ofType('ack').length).toBeLessThan(300);
    await assertAlive(bob);
  });

  it('section 2: acks of deliveries the session was sent never count against the frame rate (1,000 acked at once)', async () => {
    const c = await session(pc);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    for (let i = 0; i < 1000; i++) g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { type: 'message', id: `m${i}`, ts: 1 } });
    for (let i = 0; i < 1000; i++) c.send({ type: 'ack', id: (await c.message(`m${i}`)).id });
    await until(() => ofType('ack').length === 1000);
    await assertAlive(c);
    // An ack of something never sent, and a second ack of the same id, still count.
    for (let i = 0; i < 300; i++) c.send({ type: 'ack', id: 'm1' });
    expect((await c.closed).code).toBe(4429);
  });

  it('section 2: a message sent to a session again (a replay) has a free ack for each copy: a client that catches up acks them all', async () => {
    const c = await session(pc);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    // 300 messages, each sent twice before the client acks any (it stalled; its acks timed out and the owner sent
    // them again): 600 acks, three times the bucket (SWITCHBOARD_FRAME_RATE 100, burst 200).
    for (const round of [1, 2]) {
      for (let i = 0; i < 300; i++) g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { type: 'message', id: `r${i}`, ts: round } });
    }
    await c.next((f) => f.type === 'message' && f.id === 'r299' && f.ts === 2); // the last frame sent
    for (const _round of [1, 2]) for (let i = 0; i < 300; i++) c.send({ type: 'ack', id: `r${i}` });
    await until(() => ofType('ack').length === 600);
    await assertAlive(c);
    // A third ack of one of them was never sent: it counts.
    for (let i = 0; i < 300; i++) c.send({ type: 'ack', id: 'r1' });
    expect((await c.closed).code).toBe(4429);
  });

  it('section 2 read row: a read frame (1-500 ids) goes to the owner; a clear from the owner reaches the client', async () => {
    const c = await session(phone);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    c.send({ type: 'read', ids: ['a', 'b', 'a'] });
    await until(() => ofType('read').length === 1);
    expect(ofType('read')[0]).toEqual({ type: 'read', user: 'alice', ids: ['a', 'b'], device: 'phone', sessionId, at: expect.any(Number) });
    c.send({ type: 'read', ids: [] });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('ids') });
    c.send({ type: 'read', ids: Array.from({ length: 501 }, (_, i) => `x${i}`) });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'invalid_request' });
    g.bus.publish(g.subjects.gateway('gw-test'), { type: 'frame', sessionId, frame: { type: 'clear', ids: ['a'], badge: 3 } });
    expect(await c.next((f) => f.type === 'clear')).toEqual({ type: 'clear', ids: ['a'], badge: 3 });
  });

  it(`closes after ${MAX_CONSECUTIVE_BAD_FRAMES} rejected frames in a row (4400), not before`, async () => {
    const c = await session(pc);
    for (let i = 0; i < MAX_CONSECUTIVE_BAD_FRAMES - 1; i++) c.send('{bad');
    c.send({ type: 'ping' });
    await c.next((f) => f.type === 'pong');
    g.clock.advance(2000); // refills the rate limit, so the close below is for the bad frames, not the rate
    for (let i = 0; i < MAX_CONSECUTIVE_BAD_FRAMES; i++) c.send('{bad');
    expect((await c.closed).code).toBe(4400);
  });

  it('closes a client that does not read (1013) and cuts it off after the grace', async () => {
    const bob = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const slow = await session(pc);
    slow.ws.pause();
    const sessionId = (ofType('session_open')[1] as { session: { id: string } }).session.id;
    const frame = { type: 'message' as const, id: 'big', text: 'x'.repeat(60 * 1024), ts: 1 };
    let sent = 0;
    await until(async () => {
      for (let i = 0; i < 10; i++, sent++) g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { ...frame, id: `m${sent}` } });
      g.clock.advance(CLOSE_GRACE_MS);
      await new Promise((r) => setImmediate(r));
      return ofType('session_close').length === 1;
    }, 20_000, 'slow client closed');
    expect(await g.metric('switchboard_ws_closes_total', { code: '1013' })).toBe(1);
    expect(sent).toBeLessThan(2000);
    await assertAlive(bob);
  });

  it('cuts off a socket that answers no WebSocket ping for two heartbeats; a live one stays', async () => {
    const live = await session({ sub: 'bob', dev: 'pc', kind: 'pc' });
    const dead = await session(pc);
    dead.ws.pause(); // reads nothing, so never answers a ping
    g.clock.advance(g.config.clientHeartbeatMs); // round 1: both are pinged
    await assertAlive(live); // live answers (any frame counts, as does its automatic pong)
    expect(ofType('session_close')).toEqual([]);
    g.clock.advance(g.config.clientHeartbeatMs); // round 2: the silent one is cut off
    await until(() => ofType('session_close').length > 0, 5000, 'the dead socket to be cut off');
    expect(ofType('session_close')).toHaveLength(1);
    expect(ofType('session_close')[0]).toMatchObject({ user: 'alice', device: 'laptop' });
    await assertAlive(live);
  });

  it('section 4: an ack sent before the client read the 1001 still reaches the owner, ahead of the session_close', async () => {
    const c = await session(pc);
    const other = await session(phone);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    // The client acks each delivery as it reads it: m1 comes right before the close frame, so its ack is sent while
    // the gateway is already closing the session (a node stopping in a rolling restart).
    c.onEachFrame((f) => { if (f.type === 'message') c.send({ type: 'ack', id: f.id }); });
    g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { type: 'message', id: 'm1', ts: 1 } });
    const closing = g.gateway.closeSessions(1001);
    expect((await c.closed).code).toBe(1001);
    await closing;
    expect(other.ws.readyState).toBe(other.ws.CLOSED);
    const types = g.owned.filter((m) => 'sessionId' in m && m.sessionId === sessionId).map((m) => (m.type === 'ack' ? `ack ${m.id}` : m.type));
    expect(types.slice(-2)).toEqual(['ack m1', 'session_close']);
  });

  it('a closing session forwards only acks of its own deliveries: not other frames, not acks of ids it was never sent', async () => {
    const c = await session(pc);
    const sessionId = (ofType('session_open')[0] as { session: { id: string } }).session.id;
    c.onEachFrame((f) => {
      if (f.type !== 'message') return;
      c.send({ type: 'presence', state: 'active' });
      c.send({ type: 'ack', id: 'never-sent' });
      c.send({ type: 'read', ids: ['m1'] });
      c.send({ type: 'ack', id: f.id });
      c.send({ type: 'ack', id: f.id }); // a second ack of it: forwarded once
    });
    g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId, frame: { type: 'message', id: 'm1', ts: 1 } });
    await g.gateway.closeSessions(1001);
    expect((await c.closed).code).toBe(1001);
    const after = g.owned.filter((m) => 'sessionId' in m && m.sessionId === sessionId).map((m) => (m.type === 'ack' ? `ack ${m.id}` : m.type));
    expect(after).toEqual(['ack m1', 'session_close']);
  });

  it('closeSessions(1001) closes everyone; new upgrades are refused after stopAccepting', async () => {
    const a = await session(pc);
    const b = await session(phone);
    g.gateway.stopAccepting();
    await g.gateway.closeSessions(1001);
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    await expect(TestClient.connect(g.wsUrl)).rejects.toThrow(/503/);
    // The refusal has the body of every other one (README "Error codes"), so a client can tell why.
    expect(await refusedUpgrade(g.wsUrl)).toEqual({ status: 503, body: { error: { code: 'shutting_down', message: 'node is shutting down: connect to another node' } } });
  });

  it('an upgrade at another path is refused 404 with a code and a message', async () => {
    const refused = await refusedUpgrade(g.wsUrl.replace(/\/[^/]*$/, '/elsewhere'));
    expect(refused.status).toBe(404);
    expect(refused.body).toEqual({ error: { code: 'not_found', message: expect.stringContaining('clients connect to /') } });
  });
});
