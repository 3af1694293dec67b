import { connect } from 'node:net';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ClusterFigures } from '../gateway/dashboard-figures.js';
import { API_KEY, startGateway, type GatewayFixture } from './gateway-fixture.js';
import { until } from './support/ws-client.js';

const SECRET_TOKEN = '5ec7e7'.repeat(12);

/** Section 3 over real loopback HTTP against an in-process gateway (MemoryBus, fake store and owner). */
describe('gateway HTTP API', () => {
  let g: GatewayFixture;
  beforeEach(async () => { g = await startGateway(); });
  afterEach(async () => { await g.gateway.close(); });

  const msg = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify({ id, to: 'alice', text: 'hi', ...extra });

  it('a client that drops mid-body is logged at debug, not as an error; the next request is served', async () => {
    await g.gateway.close();
    const lines: { level: number; msg: string }[] = [];
    g = await startGateway({}, { log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) }) });
    const socket = connect(g.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":"m1"`);
    socket.end(); // gone with 991 bytes of the body unsent
    await until(() => lines.some((l) => l.msg === 'request aborted by the client' || l.level >= 50));
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect((await g.http('POST', '/v1/messages', { body: msg('m2') })).status).toBe(202);
  });

  it('serves /healthz, /readyz and /metrics without a key', async () => {
    expect(await g.http('GET', '/healthz', { key: null })).toMatchObject({ status: 200, body: { status: 'ok' } });
    g.state.ready = false;
    expect(await g.http('GET', '/readyz', { key: null })).toMatchObject({ status: 503, body: { status: 'starting' } });
    g.state.ready = true;
    expect(await g.http('GET', '/readyz', { key: null })).toMatchObject({ status: 200, body: { status: 'ready' } });
    g.state.ready = false; // ready once, not now: a failing disk, NATS lost
    expect(await g.http('GET', '/readyz', { key: null })).toMatchObject({ status: 503, body: { status: 'unready' } });
    const metrics = await g.http('GET', '/metrics', { key: null });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('switchboard_sessions');
  });

  it.each([
    ['no key', null],
    ['a wrong key', 'wrong-key-wrong-key'],
    ['an empty key', ''],
  ])('answers 401 unauthorized with %s, on every /v1 route', async (_, key) => {
    for (const [method, path] of [['POST', '/v1/messages'], ['GET', '/v1/users/alice'], ['PUT', '/v1/users/a/devices/d'], ['GET', '/v1/nope']]) {
      const res = await g.http(method, path, { key, body: method === 'GET' ? undefined : msg('m') });
      expect(res.status).toBe(401);
      expect(res.body.error).toMatchObject({ code: 'unauthorized' });
    }
    expect(g.accepted).toEqual([]);
  });

  it('answers 404 not_found and 405 method_not_allowed', async () => {
    expect((await g.http('GET', '/v1/nothing')).body.error.code).toBe('not_found');
    expect((await g.http('GET', '/nothing', { key: null })).status).toBe(404);
    const res = await g.http('GET', '/v1/messages');
    expect(res.status).toBe(405);
    expect(res.body.error.code).toBe('method_not_allowed');
    expect(res.headers.get('allow')).toBe('POST');
    // A GET route answers HEAD too, and says so (RFC 9110 section 9.3.2: HEAD is GET without the body).
    const users = await g.http('DELETE', '/v1/users/alice');
    expect(users.status).toBe(405);
    expect(users.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers HEAD wherever GET is served: the same status and headers, no body', async () => {
    for (const path of ['/v1/users/alice', '/v1/users/alice/decisions', '/v1/dashboard', '/v1/dashboard/stream', '/healthz']) {
      const get = await fetch(`${g.url}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });
      const getType = get.headers.get('content-type');
      await get.body?.cancel(); // the stream never ends by itself
      const head = await g.http('HEAD', path);
      expect({ path, status: head.status, type: head.headers.get('content-type'), body: head.body }).toEqual({ path, status: get.status, type: getType, body: undefined });
    }
    expect((await g.http('HEAD', '/v1/messages')).status).toBe(405);
  });

  it('answers HEAD /v1/dashboard without gathering the figures a GET gathers', async () => {
    await g.gateway.close();
    let gathers = 0;
    const cluster = {
      figures: () => ({ nodes: [], partitions: 0, owners: {} }) as unknown as ClusterFigures,
      gather: async () => (gathers++, new Map()),
    };
    g = await startGateway({}, { cluster });
    const get = await g.http('GET', '/v1/dashboard');
    expect(get.status).toBe(200);
    expect(gathers).toBe(1);
    const head = await g.http('HEAD', '/v1/dashboard');
    expect({ status: head.status, type: head.headers.get('content-type'), cache: head.headers.get('cache-control'), body: head.body })
      .toEqual({ status: 200, type: get.headers.get('content-type'), cache: 'no-store', body: undefined });
    expect(gathers).toBe(1);
  });

  it('accepts a message (202), then calls the same id a duplicate (200)', async () => {
    expect(await g.http('POST', '/v1/messages', { body: msg('m1') })).toMatchObject({ status: 202, body: { id: 'm1', status: 'accepted' } });
    expect(await g.http('POST', '/v1/messages', { body: msg('m1') })).toMatchObject({ status: 200, body: { id: 'm1', status: 'duplicate' } });
    expect(g.accepted).toMatchObject([{ id: 'm1', to: 'alice', text: 'hi' }]);
    expect(await g.metric('switchboard_messages_accepted_total', { source: 'http' })).toBe(1);
  });

  it('refuses bad bodies with a clear error and keeps serving', async () => {
    const badJson = await g.http('POST', '/v1/messages', { body: '{"id": "m1",' });
    expect(badJson).toMatchObject({ status: 400, body: { error: { code: 'bad_json' } } });
    const wrongType = await g.http('POST', '/v1/messages', { body: JSON.stringify({ id: 'm1', to: 42 }) });
    expect(wrongType).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(wrongType.body.error.message).toMatch(/\bto\b/);
    const longId = await g.http('POST', '/v1/messages', { body: msg('x'.repeat(129)) });
    expect(longId.body.error.message).toMatch(/\bid must be/);
    const form = await g.http('POST', '/v1/messages', { body: 'id=m1&to=alice', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form).toMatchObject({ status: 400, body: { error: { code: 'bad_json' } } });
    expect(g.accepted).toEqual([]);
    expect((await g.http('POST', '/v1/messages', { body: msg('m2'), headers: { 'content-type': 'application/json; charset=utf-8' } })).status).toBe(202);
  });

  it('refuses a body over 64 KiB with 413 body_too_large, declared or streamed', async () => {
    const big = msg('big', { text: 'x'.repeat(70 * 1024) });
    const declared = await g.http('POST', '/v1/messages', { body: big });
    expect(declared).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
    // Chunked: no content-length, the limit is enforced while reading.
    const chunks = new ReadableStream({ start(c) { for (let i = 0; i < 80; i++) c.enqueue(new TextEncoder().encode('x'.repeat(1024))); c.close(); } });
    const res = await fetch(`${g.url}/v1/messages`, {
      method: 'POST', body: chunks, duplex: 'half', headers: { authorization: 'Bearer in-process-api-key-0123456789' },
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(g.accepted).toEqual([]);
    expect((await g.http('POST', '/v1/messages', { body: msg('small') })).status).toBe(202);
  });

  /** Writes `head` and then `body` whole on a raw connection, and only then reads: what most HTTP clients do. */
  const sendWhole = (head: string, body?: Buffer, waitFor100 = false) => new Promise<{ text: string; error?: string }>((resolve) => {
    const socket = connect(g.port, '127.0.0.1');
    let text = '';
    let sentBody = false;
    const sendBody = () => {
      if (sentBody || body === undefined) return;
      sentBody = true;
      socket.write(body);
    };
    socket.on('data', (b) => {
      text += b.toString('latin1');
      if (waitFor100 && text.startsWith('HTTP/1.1 100')) sendBody();
      if (/\r\n\r\n\{.*\}$/s.test(text.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''))) socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve({ text, error: e.code }));
    socket.on('close', () => resolve({ text }));
    socket.write(head);
    if (!waitFor100) sendBody();
  });

  it('a client that sends a body over the limit whole before reading still reads the 413 (no reset under it)', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, 'x');
    const head = (path: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: ${body.length}\r\n\r\n`;
    for (const path of ['/v1/messages', '/v1/users/alice/read']) {
      const answer = await sendWhole(head(path), body);
      expect(answer.error).toBeUndefined();
      expect(answer.text).toMatch(/^HTTP\/1\.1 413 [^]*"code":"body_too_large"/);
    }
    expect((await g.http('POST', '/v1/messages', { body: msg('after') })).status).toBe(202);
  });

  it('Expect: 100-continue: a body refused from its header gets the 413 without a 100, so it is never sent; a good one gets its 100', async () => {
    const expect100 = (length: number) => `POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\n\r\n`;
    const refused = await sendWhole(expect100(20 * 1024 * 1024));
    expect(refused.text).toMatch(/^HTTP\/1\.1 413 [^]*"code":"body_too_large"/);
    const good = Buffer.from(msg('m100'));
    const accepted = await sendWhole(expect100(good.length), good, true);
    expect(accepted.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
    expect(g.accepted.map((m) => m.id)).toEqual(['m100']);
  });

  it('answers 503 with the store error code when the ingress fails', async () => {
    g.ingress.failWith = new Error('EIO');
    expect(await g.http('POST', '/v1/messages', { body: msg('m1') })).toMatchObject({ status: 503, body: { error: { code: 'store_failed' } } });
    g.state.ready = false;
    expect(await g.http('POST', '/v1/messages', { body: msg('m1') })).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
  });

  it('stores a device (200) and deletes it (204), telling the owner each time', async () => {
    const put = await g.http('PUT', '/v1/users/alice%40example.com/devices/phone%3A1', { body: JSON.stringify({ os: 'ios', token: SECRET_TOKEN }) });
    expect(put).toMatchObject({ status: 200, body: { user: 'alice@example.com', device: 'phone:1', os: 'ios', hasToken: true } });
    expect(put.body.token).toBeUndefined();
    expect(g.registry.devices.get('alice@example.com/phone:1')).toMatchObject({ os: 'ios', token: SECRET_TOKEN });
    expect((await g.http('DELETE', '/v1/users/alice%40example.com/devices/phone%3A1')).status).toBe(204);
    expect(g.registry.devices.size).toBe(0);
    expect(g.owned).toEqual([
      { type: 'device_put', user: 'alice@example.com', device: 'phone:1', os: 'ios', token: SECRET_TOKEN },
      { type: 'device_delete', user: 'alice@example.com', device: 'phone:1' },
    ]);
  });

  it('refuses bad device calls: unknown os, ids too long or empty, bad percent-encoding, store failure', async () => {
    const body = JSON.stringify({ os: 'ios', token: SECRET_TOKEN });
    expect((await g.http('PUT', '/v1/users/a/devices/d', { body: JSON.stringify({ os: 'symbian', token: 't' }) })).body.error.message).toMatch(/os must be/);
    expect((await g.http('PUT', `/v1/users/${'u'.repeat(129)}/devices/d`, { body })).body.error.message).toMatch(/user must be/);
    expect((await g.http('PUT', `/v1/users/u/devices/${'d'.repeat(129)}`, { body })).body.error.message).toMatch(/device must be/);
    expect((await g.http('PUT', '/v1/users//devices/d', { body })).status).toBe(400);
    expect((await g.http('GET', '/v1/users/%E0%A4%A')).body.error.message).toMatch(/user must be/);
    expect(g.owned).toEqual([]);
    g.registry.failing = true;
    expect(await g.http('PUT', '/v1/users/a/devices/d', { body })).toMatchObject({ status: 503, body: { error: { code: 'store_failed' } } });
  });

  it('POST /v1/users/{u}/read: validates 1-500 ids, asks the owner, answers with the badge', async () => {
    for (const body of ['{}', '{"ids":[]}', '{"ids":"a"}', '{"ids":[1]}', JSON.stringify({ ids: Array.from({ length: 501 }, (_, i) => `m${i}`) })]) {
      expect(await g.http('POST', '/v1/users/alice/read', { body })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: expect.stringContaining('ids') } } });
    }
    const asked: unknown[] = [];
    g.bus.serve(g.subjects.queryPartition('*'), (q) => {
      asked.push(q);
      return { type: 'read_done', unread: 4 };
    });
    expect(await g.http('POST', '/v1/users/alice/read', { body: '{"ids":["m1","m2"]}' })).toMatchObject({ status: 200, body: { user: 'alice', read: 2, unread: 4 } });
    expect(asked).toEqual([{ type: 'read_query', user: 'alice', ids: ['m1', 'm2'] }]);
  });

  it('answers user and decision queries from the owner, and 503 when nobody answers', async () => {
    // A query nobody answered is not about accepting messages: the answer says what happened.
    const unanswered = await g.http('GET', '/v1/users/alice');
    expect(unanswered).toMatchObject({ status: 503, body: { error: { code: 'unavailable', message: expect.stringMatching(/^temporarily unavailable: no (responder|answer) /) } } });
    expect(unanswered.body.error.message).not.toContain('accept messages');
    const queries: unknown[] = [];
    g.bus.serve(g.subjects.queryPartition('*'), (q) => {
      queries.push(q);
      if (q.type === 'user_query') return { type: 'user_view', view: { user: q.user, owner: 'gw-test', pc: { state: 'inactive', sessions: 0 }, devices: [], held: 0, unread: 0 } };
      return { type: 'decisions', decisions: [] };
    });
    expect(await g.http('GET', '/v1/users/alice')).toMatchObject({ status: 200, body: { user: 'alice', owner: 'gw-test' } });
    expect(await g.http('GET', '/v1/users/alice/decisions?limit=5')).toMatchObject({ status: 200, body: { decisions: [] } });
    expect((await g.http('GET', '/v1/users/alice/decisions')).status).toBe(200);
    // Section 3 sets no upper bound on N: a larger one is answered with what is kept (100), as is no limit at all.
    expect((await g.http('GET', '/v1/users/alice/decisions?limit=101')).status).toBe(200);
    expect((await g.http('GET', '/v1/users/alice/decisions?limit=1000000')).status).toBe(200);
    expect(queries).toEqual([
      { type: 'user_query', user: 'alice' },
      { type: 'decisions_query', user: 'alice', limit: 5 },
      { type: 'decisions_query', user: 'alice', limit: 100 },
      { type: 'decisions_query', user: 'alice', limit: 100 },
      { type: 'decisions_query', user: 'alice', limit: 100 },
    ]);
    for (const limit of ['0', 'x', '-1', '2.5', '']) {
      expect((await g.http('GET', `/v1/users/alice/decisions?limit=${limit}`)).body.error).toEqual({ code: 'invalid_request', message: 'request does not match the contract: limit must be a positive integer' });
    }
  });

  it('while stopping: /readyz 503, /v1 503 shutting_down, upgrades refused; health still 200', async () => {
    g.gateway.stopAccepting();
    expect((await g.http('GET', '/readyz', { key: null })).status).toBe(503);
    expect(await g.http('POST', '/v1/messages', { body: msg('m1') })).toMatchObject({ status: 503, body: { error: { code: 'shutting_down' } } });
    expect((await g.http('GET', '/healthz', { key: null })).status).toBe(200);
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(g.wsUrl);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    expect(refused).toBe(503);
  });
});
