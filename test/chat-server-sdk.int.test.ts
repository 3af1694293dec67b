import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatServerClient, SwitchboardApiError } from '../chat-server/client.js';
import { errorFromAnswer } from '../chat-server/errors.js';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { NodeProcess } from './support/node-process.js';
import { msgId, uniqueUser } from './support/scenario.js';

/**
 * The chat-server SDK (PROTOCOL.md section 3) against a real node over HTTP and a real cluster node over NATS;
 * a gateway that dies mid-request is a proxy in front of the node that cuts the connection after the node answered.
 */

let node: NodeProcess;
beforeAll(async () => {
  node = await NodeProcess.start();
});
afterAll(async () => {
  await node?.stop();
  await node?.removeData();
});

type Behaviour = 'forward' | 'forward_then_die' | 'forward_then_504' | 'answer_503';

/** A proxy to the node whose answer to each request follows the script (then forwards). Records every request body. */
async function flakyGateway(script: Behaviour[]): Promise<{ url: string; bodies: string[]; server: Server }> {
  const bodies: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      bodies.push(body.toString());
      const behaviour = script.shift() ?? 'forward';
      if (behaviour === 'answer_503') {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'unavailable', message: 'not ready' } }));
        return;
      }
      const up = httpRequest(node.url + req.url, { method: req.method, headers: req.headers }, (answer) => {
        const parts: Buffer[] = [];
        answer.on('data', (c: Buffer) => parts.push(c));
        answer.on('end', () => {
          // The node accepted; the gateway dies before the chat server hears it.
          if (behaviour === 'forward_then_die') return void req.socket.destroy();
          // The cluster's answer when JetStream did not answer in time (it may have stored the message, here it did).
          if (behaviour === 'forward_then_504') {
            return void res.writeHead(504, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'outcome_unknown', message: 'no answer in time' } }));
          }
          res.writeHead(answer.statusCode!, answer.headers).end(Buffer.concat(parts));
        });
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, server };
}

/**
 * Runs `fn` with an SDK that sends through a flaky gateway playing `script` (retries 10 ms apart, `attempts` in all
 * when given); the gateway is closed afterwards.
 */
async function throughFlaky(script: Behaviour[], attempts: number | undefined, fn: (sdk: ChatServerClient, gw: { bodies: string[] }) => Promise<void>): Promise<void> {
  const gw = await flakyGateway(script);
  try {
    await fn(new ChatServerClient({ http: { url: gw.url, apiKey: node.apiKey }, retry: { initialMs: 10, ...(attempts === undefined ? {} : { attempts }) } }), gw);
  } finally {
    gw.server.close();
  }
}

describe('ChatServerClient over HTTP', () => {
  it('send: accepted, then duplicate for the same id', async () => {
    const sdk = new ChatServerClient({ http: { url: node.url, apiKey: node.apiKey } });
    const id = msgId();
    expect(await sdk.send({ id, to: uniqueUser(), text: 'hi' })).toEqual({ id, status: 'accepted' });
    expect(await sdk.send({ id, to: uniqueUser(), text: 'hi' })).toEqual({ id, status: 'duplicate' });
  });

  it('a gateway dying mid-request: retried with the same id; the earlier attempt was accepted (duplicate), delivered once', async () => {
    await throughFlaky(['forward_then_die'], undefined, async (sdk, gw) => {
      const id = msgId();
      const user = uniqueUser();
      expect(await sdk.send({ id, to: user, text: 'once' })).toEqual({ id, status: 'duplicate' });
      expect(gw.bodies).toHaveLength(2);
      expect(gw.bodies.map((b) => JSON.parse(b).id)).toEqual([id, id]);
      const decisions = (await node.http('GET', `/v1/users/${user}/decisions`)).body.decisions;
      expect(decisions.filter((d: { id: string }) => d.id === id)).toHaveLength(1);
    });
  });

  it('504 outcome_unknown is retried with the same id, over HTTP and as a NATS answer (no status): the earlier attempt was stored (duplicate)', async () => {
    await throughFlaky(['forward_then_504'], undefined, async (sdk, gw) => {
      const id = msgId();
      expect(await sdk.send({ id, to: uniqueUser(), text: 'x' })).toEqual({ id, status: 'duplicate' });
      expect(gw.bodies).toHaveLength(2);
    });
    expect(errorFromAnswer({ error: { code: 'outcome_unknown', message: 'm' } })).toMatchObject({ code: 'outcome_unknown', temporary: true });
  });

  it('ends with outcome_unknown, never the last 503, when an earlier attempt may have been accepted (section 3: a 503 is never delivered)', async () => {
    await throughFlaky(['forward_then_504', 'answer_503', 'answer_503'], 3, async (sdk, gw) => {
      const err = await sdk.send({ id: msgId(), to: uniqueUser(), text: 'x' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'SwitchboardApiError', code: 'outcome_unknown', temporary: true, message: expect.stringContaining('same id') });
      expect(gw.bodies).toHaveLength(3);
    });
    // Reads are no sends: their last error stands.
    await throughFlaky(['answer_503', 'answer_503'], 2, async (reads) => {
      expect(await reads.read(uniqueUser(), ['m']).catch((e: unknown) => e)).toMatchObject({ code: 'unavailable', status: 503 });
    });
  });

  it('503s are retried with backoff; the third attempt is accepted', async () => {
    await throughFlaky(['answer_503', 'answer_503'], undefined, async (sdk, gw) => {
      const id = msgId();
      expect(await sdk.send({ id, to: uniqueUser(), text: 'x' })).toEqual({ id, status: 'accepted' });
      expect(gw.bodies).toHaveLength(3);
    });
  });

  it('gives up after the attempts, with the last temporary error', async () => {
    await throughFlaky(['answer_503', 'answer_503', 'answer_503'], 3, async (sdk, gw) => {
      const err = await sdk.send({ id: msgId(), to: 'u', text: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SwitchboardApiError);
      expect(err).toMatchObject({ code: 'unavailable', status: 503, temporary: true });
      expect(gw.bodies).toHaveLength(3);
    });
  });

  it('typed errors from the registry, not retried: 400 invalid_request, 401 unauthorized', async () => {
    const gw = await flakyGateway([]);
    try {
      const sdk = new ChatServerClient({ http: { url: gw.url, apiKey: node.apiKey } });
      const bad = await sdk.send({ id: '', to: 'u', text: 'x' }).catch((e: unknown) => e);
      expect(bad).toMatchObject({ name: 'SwitchboardApiError', code: 'invalid_request', status: 400, temporary: false });
      expect((bad as Error).message).toMatch(/id/);
      const wrongKey = new ChatServerClient({ http: { url: gw.url, apiKey: 'not-the-key-0123456789' } });
      expect(await wrongKey.send({ id: msgId(), to: 'u', text: 'x' }).catch((e: unknown) => e)).toMatchObject({ code: 'unauthorized', status: 401 });
      expect(gw.bodies).toHaveLength(2);
    } finally {
      gw.server.close();
    }
  });

  it('refuses at construction what could never be sent: no transport, an http.url that is no http(s) URL or holds a password', () => {
    expect(() => new ChatServerClient({})).toThrow('needs http or nats options');
    expect(() => new ChatServerClient({ http: { url: '127.0.0.1:7400', apiKey: 'k' } })).toThrow('must be an http(s) URL');
    expect(() => new ChatServerClient({ http: { url: 'ftp://127.0.0.1', apiKey: 'k' } })).toThrow('must be an http(s) URL');
    let refusal = '';
    try {
      new ChatServerClient({ http: { url: 'http://user:hunter2@127.0.0.1:7400', apiKey: 'k' } });
    } catch (e) {
      refusal = (e as Error).message;
    }
    expect(refusal).toBe('http.url must not hold a user name or password (the API key authenticates)');
    expect(new ChatServerClient({ http: { url: 'https://switchboard.example:7400/', apiKey: 'k' } })).toBeInstanceOf(ChatServerClient);
  });

  it('a node that is down: a transport error, temporary, after the retries', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const sdk = new ChatServerClient({ http: { url: `http://127.0.0.1:${port}/`, apiKey: 'k' }, retry: { attempts: 2, initialMs: 10 } });
    const e = (await sdk.send({ id: msgId(), to: 'u' }).catch((err: unknown) => err)) as Error;
    expect(e).toMatchObject({ code: 'transport', temporary: true });
    // Where it went and why it failed, not undici's bare "fetch failed".
    expect(e.message).toBe(`HTTP POST http://127.0.0.1:${port}/v1/messages failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port})`);
  });

  it('batch, read and policy against the node', async () => {
    const sdk = new ChatServerClient({ http: { url: node.url, apiKey: node.apiKey } });
    const user = uniqueUser();
    const ids = [msgId(), msgId()];
    expect(await sdk.sendBatch(ids.map((id) => ({ id, to: user, text: id })))).toEqual(ids.map((id) => ({ id, status: 'accepted' })));
    const again = await sdk.sendBatch([{ id: ids[0], to: user }, { id: '', to: user }]);
    expect(again[0]).toEqual({ id: ids[0], status: 'duplicate' });
    expect(again[1]).toMatchObject({ error: { code: 'invalid_request', temporary: false } });
    const read = await sdk.read(user, ids).then(() => 'ok', (e: SwitchboardApiError) => e.code);
    expect(read).toBe('ok');
    expect((await node.http('GET', `/v1/users/${encodeURIComponent(user)}`)).body).toMatchObject({ held: 0 });
    expect(await sdk.getPolicy(user)).toMatchObject({ mobile: 'when_away' });
    expect(await sdk.setPolicy(user, { mobile: 'always', idleAfterSeconds: 120 })).toMatchObject({ mobile: 'always', idleAfterSeconds: 120 });
    expect(await sdk.setPolicy(user, { mobile: 'sometimes' as never }).catch((e: unknown) => e)).toMatchObject({ code: 'invalid_field', status: 400 });
    await expect(sdk.sendBatch([])).rejects.toThrow(/1-500 messages/);
  });
});

describe('ChatServerClient against a stand-in speaking section 3 (batch, read, policy)', () => {
  it('sends the documented requests and reads the documented answers', async () => {
    const seen: { method: string; url: string; body: any }[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c));
      req.on('end', () => {
        const body = text ? JSON.parse(text) : undefined;
        seen.push({ method: req.method!, url: req.url!, body });
        const json = (status: number, b: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(b));
        if (req.url === '/v1/messages/batch') {
          return json(200, { results: [{ id: 'a', status: 'accepted' }, { id: 'b', status: 'duplicate' }, { error: { code: 'invalid_field', message: 'data key "from" is reserved' } }] });
        }
        if (req.url === '/v1/users/u%2F1/read') return json(200, {});
        if (req.url === '/v1/users/u1/policy') return json(200, req.method === 'PUT' ? body : { mobile: 'always' });
        json(404, { error: { code: 'not_found', message: 'no such resource' } });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const sdk = new ChatServerClient({ http: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: 'k' } });
      const results = await sdk.sendBatch([{ id: 'a', to: 'u1' }, { id: 'b', to: 'u1' }, { id: 'c', to: 'u1', data: { from: 'x' } }]);
      expect(results.slice(0, 2)).toEqual([{ id: 'a', status: 'accepted' }, { id: 'b', status: 'duplicate' }]);
      expect(results[2]).toMatchObject({ error: { code: 'invalid_field', temporary: false } });
      await sdk.read('u/1', ['a', 'b']);
      expect(await sdk.getPolicy('u1')).toEqual({ mobile: 'always' });
      expect(await sdk.setPolicy('u1', { mobile: 'never', idleAfterSeconds: 120 })).toEqual({ mobile: 'never', idleAfterSeconds: 120 });
      expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
        'POST /v1/messages/batch', 'POST /v1/users/u%2F1/read', 'GET /v1/users/u1/policy', 'PUT /v1/users/u1/policy',
      ]);
      expect(seen[0].body.messages).toHaveLength(3);
      expect(seen[1].body).toEqual({ ids: ['a', 'b'] });
    } finally {
      server.close();
    }
  });
});

describe('ChatServerClient over NATS (a cluster node)', () => {
  let nats: NatsServer;
  let cluster: Cluster;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await NatsServer.start();
    cluster = await Cluster.start({ natsUrls: [nats.url], nodes: 1, partitions: 4 });
    nc = await connect({ servers: [nats.url] });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await cluster?.dispose();
    await nats?.stop();
  });

  it('the same send() call: accepted, duplicate, typed errors; batch in order', async () => {
    const sdk = new ChatServerClient({ nats: { connection: nc } });
    const id = msgId();
    const user = uniqueUser();
    expect(await sdk.send({ id, to: user, text: 'over NATS' })).toEqual({ id, status: 'accepted' });
    expect(await sdk.send({ id, to: user, text: 'over NATS' })).toEqual({ id, status: 'duplicate' });
    expect(await sdk.send({ id: '', to: user }).catch((e: unknown) => e)).toMatchObject({ code: 'invalid_request', temporary: false });
    const ids = [msgId(), id, msgId()];
    expect(await sdk.sendBatch(ids.map((i) => ({ id: i, to: user, text: i })))).toEqual([
      { id: ids[0], status: 'accepted' }, { id, status: 'duplicate' }, { id: ids[2], status: 'accepted' },
    ]);
  });

  it('no responders (a wrong subject prefix): temporary transport error after the retries', async () => {
    const sdk = new ChatServerClient({ nats: { connection: nc, subjectPrefix: 'nobody-listens', timeoutMs: 500 }, retry: { attempts: 2, initialMs: 10 } });
    const e = (await sdk.send({ id: msgId(), to: 'u' }).catch((err: unknown) => err)) as Error;
    expect(e).toMatchObject({ code: 'transport', temporary: true });
    expect(e.message).toMatch(/^NATS request on nobody-listens\.send failed: /);
  });
});
