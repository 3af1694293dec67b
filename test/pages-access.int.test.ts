import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';

/**
 * Issue 12: who gets the pages. The playground is refused on a non-loopback listener unless SWITCHBOARD_PLAYGROUND=on,
 * and its token and send calls answer only clients whose socket comes from a loopback address. The dashboard's data
 * needs the API key. Real node, real sockets; the non-loopback client binds this machine's own non-loopback address.
 */
const outside = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

interface Answer { status: number; body: any; text: string }
function call(port: number, opts: { method?: string; path: string; from?: string; to?: string; host?: string; origin?: string; type?: string | null; body?: unknown; key?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (payload !== undefined && opts.type !== null) headers['content-type'] = opts.type ?? 'application/json';
    if (opts.host) headers.host = opts.host;
    if (opts.origin) headers.origin = opts.origin;
    if (opts.key) headers.authorization = `Bearer ${opts.key}`;
    const req = request({ host: opts.to ?? '127.0.0.1', port, path: opts.path, method: opts.method ?? 'GET', localAddress: opts.from, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let body: any;
        try { body = JSON.parse(text); } catch { body = undefined; }
        resolve({ status: res.statusCode!, body, text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('pages: access', () => {
  let node: NodeProcess | undefined;
  afterEach(async () => {
    await node?.stop();
    await node?.removeData();
    node = undefined;
  });

  it('auto on a non-loopback listener: the playground and its API are 404 with a clear message', async () => {
    node = await NodeProcess.start({ env: { SWITCHBOARD_HOST: '0.0.0.0' } });
    for (const path of ['/playground', '/playground/api/info', '/pages/playground.js']) {
      const r = await call(node.port, { path });
      expect(r.status, path).toBe(404);
      expect(r.body.error.code).toBe('not_found');
      expect(r.body.error.message).toContain('the playground is off');
    }
    const minted = await call(node.port, { method: 'POST', path: '/playground/api/token', body: { device: 'd', kind: 'pc' } });
    expect(minted.status).toBe(404);
    // The dashboard page is there; its data needs the key.
    expect((await call(node.port, { path: '/dashboard' })).status).toBe(200);
  });

  it('off on a loopback listener: refused too', async () => {
    node = await NodeProcess.start({ env: { SWITCHBOARD_PLAYGROUND: 'off' } });
    expect((await call(node.port, { path: '/playground' })).status).toBe(404);
  });

  it('on, listening on every address: the API answers loopback clients only (socket address, then Host header)', async () => {
    node = await NodeProcess.start({ env: { SWITCHBOARD_HOST: '0.0.0.0', SWITCHBOARD_PLAYGROUND: 'on' } });
    const page = await call(node.port, { path: '/playground' });
    expect(page.status).toBe(200);
    expect(page.text).not.toContain(node.apiKey);
    expect(page.text).not.toContain(node.jwtSecret);
    const token = { method: 'POST', path: '/playground/api/token', body: { device: 'pc-1', kind: 'pc' } };
    const local = await call(node.port, token);
    expect(local.status).toBe(200);
    expect(local.body.token.split('.')).toHaveLength(3);
    // A page whose DNS name was rebound to 127.0.0.1: right socket, foreign Host.
    const rebound = await call(node.port, { ...token, host: `evil.example:${node.port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body.error.code).toBe('loopback_only');
    // Another site's page in the operator's browser: a no-cors POST without a Content-Type (no CORS preflight) still
    // carries its Origin, and the playground does not send for it; its own page (a loopback origin) does.
    const send = { method: 'POST', path: '/playground/api/send', body: { text: 'hi' }, type: null };
    const crossSite = await call(node.port, { ...send, origin: 'https://evil.example' });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error).toEqual({ code: 'loopback_only', message: expect.stringContaining('Origin') });
    expect((await call(node.port, { ...send, origin: 'null' })).status).toBe(403);
    // Another local app's page (another port) is another origin too.
    expect((await call(node.port, { ...send, origin: 'http://localhost:3000', host: `localhost:${node.port}` })).status).toBe(403);
    // Its own page's origin, but without declaring JSON: a POST the page itself never sends, refused (415).
    expect((await call(node.port, { ...send, origin: `http://localhost:${node.port}`, host: `localhost:${node.port}` })).body.error.code).toBe('unsupported_media_type');
    expect((await call(node.port, { ...send, type: 'application/json', origin: `http://localhost:${node.port}`, host: `localhost:${node.port}` })).status).toBe(202);
    // Not for users outside the playground.
    const alice = await call(node.port, { ...token, body: { user: 'alice', device: 'pc-1', kind: 'pc' } });
    expect(alice.status).toBe(400);
    expect(alice.body.error.message).toContain('user');
    // A known call with the other method is 405 naming the one it takes; an unknown call is 404.
    const wrongMethod = await call(node.port, { method: 'GET', path: '/playground/api/token' });
    expect(wrongMethod).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed', message: expect.stringContaining('token takes POST') } } });
    expect((await call(node.port, { method: 'POST', path: '/playground/api/info' })).status).toBe(405);
    // A GET call answers HEAD as GET without the body (RFC 9110 section 9.3.2).
    expect(await call(node.port, { method: 'HEAD', path: '/playground/api/info' })).toMatchObject({ status: 200, text: '' });
    expect((await call(node.port, { method: 'HEAD', path: '/playground/api/token' })).status).toBe(405);
    expect((await call(node.port, { path: '/playground/api/nothing' })).body.error.code).toBe('not_found');
    if (!outside) return; // no non-loopback address on this machine: the unit test of isLoopbackAddress covers it
    for (const call_ of [token, { method: 'POST', path: '/playground/api/send', body: { text: 'hi' } }, { path: '/playground/api/decisions' }]) {
      // The Host header says localhost; the socket says otherwise, and the socket wins.
      const remote = await call(node.port, { ...call_, from: outside, to: outside, host: `localhost:${node.port}` });
      expect(remote.status, call_.path).toBe(403);
      expect(remote.body.error).toEqual({ code: 'loopback_only', message: expect.stringContaining('only clients on this machine') });
    }
  });

  it('the dashboard data needs the bearer key; the stream sends figures', async () => {
    node = await NodeProcess.start();
    expect((await call(node.port, { path: '/v1/dashboard' })).status).toBe(401);
    expect((await call(node.port, { path: '/v1/dashboard/stream' })).status).toBe(401);
    const snapshot = await call(node.port, { path: '/v1/dashboard', key: node.apiKey });
    expect(snapshot.status).toBe(200);
    expect(snapshot.body).toMatchObject({ node: expect.any(String), ownedPartitions: 64, sessions: expect.any(Array) });
    const res = await fetch(`${node.url}/v1/dashboard/stream`, { headers: { authorization: `Bearer ${node.apiKey}` } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('event: figures\ndata: ')) text += (await reader.read()).value ?? '';
    await reader.cancel();
  });
});
