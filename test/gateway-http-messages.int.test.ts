import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SwitchboardError, type ChatMessage } from '../protocol/index.js';
import type { AcceptResult } from '../store/types.js';
import { API_KEY, startGateway, type GatewayFixture } from './gateway-fixture.js';

/**
 * Issue 13: `POST /v1/messages` and `/v1/messages/batch` answer through callbacks, with hand-built answers and a
 * body reader that keeps a one-chunk body as is. Their answers must stay byte for byte those of section 3.
 */

/** One raw request; the body is written in the given pieces (each its own write, so several TCP chunks). */
function raw(port: number, path: string, pieces: Buffer[], headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.flushHeaders();
    const write = (i: number): void => {
      if (i === pieces.length) return void req.end();
      req.write(pieces[i], () => setImmediate(() => write(i + 1)));
    };
    write(0);
  });
}

describe('POST /v1/messages, byte for byte', () => {
  let g: GatewayFixture;
  beforeEach(async () => { g = await startGateway(); });
  afterEach(async () => { await g.gateway.close(); });

  it('answers {"id","status"} exactly as JSON.stringify would, whatever the id holds', async () => {
    for (const id of ['m1', 'quote"back\\slash', 'ünï-😀', '</script>']) {
      const body = Buffer.from(JSON.stringify({ id, to: 'alice' }));
      const first = await raw(g.port, '/v1/messages', [body]);
      expect(first).toMatchObject({ status: 202, text: JSON.stringify({ id, status: 'accepted' }) });
      expect(first.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(first.headers['content-length']).toBe(String(Buffer.byteLength(first.text)));
      expect(await raw(g.port, '/v1/messages', [body])).toMatchObject({ status: 200, text: JSON.stringify({ id, status: 'duplicate' }) });
    }
    expect(await g.metric('switchboard_messages_accepted_total', { source: 'http' })).toBe(4);
    expect(await g.metric('switchboard_messages_duplicate_total', {})).toBe(4);
  });

  it('reads a body sent in many pieces, a character split between two of them', async () => {
    const body = Buffer.from(JSON.stringify({ id: 'split', to: 'alice', text: 'é😀'.repeat(50) }));
    const cut = body.indexOf(Buffer.from('😀')) + 2; // inside the 4-byte character
    const pieces = [body.subarray(0, 5), body.subarray(5, cut), body.subarray(cut, cut + 7), body.subarray(cut + 7)];
    expect((await raw(g.port, '/v1/messages', pieces)).status).toBe(202);
    expect(g.accepted.map((m) => m.text)).toEqual(['é😀'.repeat(50)]);
  });

  it('refuses text that is not UTF-8 (invalid_field) and takes the JSON media types of section 3', async () => {
    const bad = Buffer.concat([Buffer.from('{"id":"m","to":"alice","text":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const res = await raw(g.port, '/v1/messages', [bad]);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).error.code).toBe('invalid_field');
    const types: [string, number][] = [['application/json', 202], ['Application/JSON; charset=utf-8', 202], ['application/vnd.chat+json', 202], ['text/json', 202], ['application/jsonx', 202]]; // keyed: any declared type is read as JSON
    for (const [i, [type, status]] of types.entries()) {
      expect((await raw(g.port, '/v1/messages', [Buffer.from(JSON.stringify({ id: `t${i}`, to: 'alice' }))], { 'content-type': type })).status).toBe(status);
    }
  });

  it('answers a store failure 503 with the store\'s code, whether the ingress throws, rejects, or refuses; then goes on', async () => {
    const body = Buffer.from(JSON.stringify({ id: 'm', to: 'alice' }));
    const real = g.ingress.accept;
    const cases: [string, (msg: ChatMessage) => Promise<AcceptResult>, string][] = [
      ['throws', () => { throw new Error('disk gone'); }, 'store_failed'],
      ['rejects', () => Promise.reject(new Error('disk full')), 'store_failed'],
      ['refuses', () => Promise.reject(new SwitchboardError('shutting_down')), 'shutting_down'],
    ];
    for (const [, accept, code] of cases) {
      g.ingress.accept = accept;
      const res = await raw(g.port, '/v1/messages', [body]);
      expect(res.status).toBe(503);
      expect(JSON.parse(res.text).error.code).toBe(code);
    }
    g.ingress.accept = real;
    expect((await raw(g.port, '/v1/messages?trace=1', [body])).status).toBe(202);
  });

  it('answers 503 unavailable before reading a body while the node is not ready', async () => {
    g.state.ready = false;
    const res = await raw(g.port, '/v1/messages', [Buffer.from('{"id":"m","to":"alice"}')]);
    expect(res.status).toBe(503);
    expect(JSON.parse(res.text).error).toEqual({ code: 'unavailable', message: expect.stringContaining('not ready to accept messages') });
    expect(g.accepted).toEqual([]);
  });
});

describe('POST /v1/messages/batch', () => {
  let g: GatewayFixture;
  beforeEach(async () => { g = await startGateway(); });
  afterEach(async () => { await g.gateway.close(); });

  it('answers one result per message in order, and counts accepted and duplicate messages once each', async () => {
    await g.http('POST', '/v1/messages', { body: JSON.stringify({ id: 'old', to: 'alice' }) });
    const messages = [{ id: 'a', to: 'alice' }, { id: 'old', to: 'alice' }, { id: 'b', to: 'bob', ttlSeconds: -1 }, { id: 'c', to: 'bob' }];
    const res = await g.http('POST', '/v1/messages/batch', { body: JSON.stringify({ messages }) });
    expect(res.status).toBe(200);
    expect(res.body.results).toEqual([
      { id: 'a', status: 'accepted' },
      { id: 'old', status: 'duplicate' },
      { id: 'b', error: { code: 'invalid_request', message: expect.stringContaining('ttlSeconds') } },
      { id: 'c', status: 'accepted' },
    ]);
    expect(await g.metric('switchboard_messages_accepted_total', { source: 'http' })).toBe(3);
    expect(await g.metric('switchboard_messages_duplicate_total', {})).toBe(1);
  });

  it('answers a store failure per message, and refuses a body that is not a batch as a whole', async () => {
    g.ingress.accept = (msg) => (msg.id === 'x' ? Promise.reject(new Error('disk full')) : Promise.resolve('accepted'));
    const res = await g.http('POST', '/v1/messages/batch', { body: JSON.stringify({ messages: [{ id: 'x', to: 'u' }, { id: 'y', to: 'u' }] }) });
    expect(res.body.results).toEqual([{ id: 'x', error: { code: 'store_failed', message: 'durable store write failed' } }, { id: 'y', status: 'accepted' }]);
    const whole = await g.http('POST', '/v1/messages/batch', { body: '{"messages":[]}' });
    expect(whole).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect((await g.http('POST', '/v1/messages/batch', { body: '[' })).body.error.code).toBe('bad_json');
  });
});
