import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay, rateLimitedDelay } from '../clients/backoff.js';
import { SwitchboardClient, type Disconnect } from '../clients/client.js';
import { ScriptedSocket } from './support/scripted-socket.js';
import { ClientError, classifyClose } from '../clients/close-codes.js';
import { MAX_CLIENT_FRAME_BYTES, type MessageFrame } from '../clients/wire.js';
import { MAX_FRAME_BYTES } from '../protocol/frames.js';

/**
 * The client core against a scripted WebSocket (the real node is in clients.int.test.ts): what it sends, how it
 * reconnects, and what each close code does. Virtual time throughout.
 */

const last = () => ScriptedSocket.all.at(-1)!;
const msg = (id: string): MessageFrame => ({ type: 'message', id, text: `text ${id}`, ts: 1 });

function client(token: string | (() => Promise<string>) = 'tok', extra = {}) {
  const c = new SwitchboardClient({ url: 'ws://x/v1/ws', token, WebSocket: ScriptedSocket, random: () => 0.5, ...extra });
  const shown: string[] = [];
  const disconnects: Disconnect[] = [];
  const stopped: (ClientError | undefined)[] = [];
  c.on('message', (m) => shown.push(m.id));
  c.on('disconnect', (d) => disconnects.push(d));
  c.on('stopped', (e) => stopped.push(e));
  return { c, shown, disconnects, stopped };
}

async function connectOpen() {
  await vi.advanceTimersByTimeAsync(0);
  last().open();
  last().welcome();
}

beforeEach(() => {
  ScriptedSocket.all = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('client core', () => {
  it('says hello with the token first, then presence, then queued frames', async () => {
    const { c } = client();
    c.setPresence({ state: 'active' });
    c.send({ type: 'read', ids: ['m1'] });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    expect(last().sent).toEqual([{ type: 'hello', token: 'tok' }]);
    last().welcome();
    expect(last().sent.slice(1)).toEqual([{ type: 'presence', state: 'active' }, { type: 'read', ids: ['m1'] }]);
    expect(c.state).toBe('open');
    expect(c.welcome?.idleAfterMs).toBe(60_000);
    c.stop();
  });

  it('a policy frame is emitted as `policy` and updates welcome.idleAfterMs; unknown frame types are ignored', async () => {
    const { c } = client();
    const policies: unknown[] = [];
    c.on('policy', (p) => policies.push(p));
    c.start();
    await connectOpen();
    last().frame({ type: 'policy', idleAfterMs: 300_000 });
    last().frame({ type: 'from_the_future', x: 1 });
    expect(policies).toEqual([{ type: 'policy', idleAfterMs: 300_000 }]);
    expect(c.welcome?.idleAfterMs).toBe(300_000);
    expect(c.state).toBe('open');
    c.stop();
  });

  it('read() sends at most 500 ids per frame (section 2)', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    c.read(Array.from({ length: 1201 }, (_, i) => `m${i}`));
    const reads = last().sent.filter((f) => f.type === 'read');
    expect(reads.map((r) => r.ids.length)).toEqual([500, 500, 201]);
    expect(reads[2].ids.at(-1)).toBe('m1200');
    c.stop();
  });

  it('read() also keeps each frame under the 64 KiB frame limit: 500 long non-ASCII ids go in several frames', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    // 128 characters, the longest id the server takes; UTF-8 makes each ~250 bytes: 500 of them would be ~125 KB.
    const ids = Array.from({ length: 500 }, (_, i) => `${'é'.repeat(120)}${String(i).padStart(8, '0')}`);
    c.read(ids);
    const reads = last().sent.filter((f) => f.type === 'read');
    expect(reads.length).toBeGreaterThan(1);
    for (const r of reads) expect(Buffer.byteLength(JSON.stringify(r))).toBeLessThanOrEqual(MAX_FRAME_BYTES);
    expect(reads.flatMap((r) => r.ids)).toEqual(ids);
    expect(MAX_CLIENT_FRAME_BYTES).toBe(MAX_FRAME_BYTES); // the client's copy of the server's limit
    c.stop();
  });

  it('read() refuses ids the contract refuses (section 3: 1-128 characters) and sends nothing, not even the good ones', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    const before = last().sent.length;
    const bad: [unknown[], RegExp][] = [
      [['ok', ''], /ids\[1\] is empty/],
      [['y'.repeat(129)], /ids\[0\] is longer than 128 characters/],
      [['y'.repeat(70_000)], /ids\[0\] is longer than 128/], // was sent as one 70 KB frame: closed 1009
      [['ok', '\ud800'], /ids\[1\] holds a lone surrogate/], // not UTF-8: no frame can carry it
      [[42], /ids\[0\] is a number/],
    ];
    for (const [ids, message] of bad) {
      let thrown: unknown;
      try { c.read(ids as string[]); } catch (e) { thrown = e; }
      expect(thrown, String(message)).toBeInstanceOf(ClientError);
      expect(thrown).toMatchObject({ code: 'invalid_read', message: expect.stringMatching(message) });
    }
    c.read([]); // nothing to read: no frame
    c.read(['😀'.repeat(128)]); // 128 characters (256 UTF-16 units): a good id
    c.read(['a\u0000b', '👩\u200d💻', 'tab\tid']); // any characters (section 3: "1-128 chars")
    expect(last().sent.slice(before)).toEqual([{ type: 'read', ids: ['😀'.repeat(128)] }, { type: 'read', ids: ['a\u0000b', '👩\u200d💻', 'tab\tid'] }]);
    expect(c.state).toBe('open');
    c.stop();
  });

  it('send() refuses what the server would refuse for its shape: a read frame of 0 or 501 ids, a frame over 64 KiB', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    const before = last().sent.length;
    expect(() => c.send({ type: 'read', ids: [] })).toThrow(expect.objectContaining({ code: 'invalid_read' }));
    expect(() => c.send({ type: 'read', ids: Array.from({ length: 501 }, (_, i) => `m${i}`) })).toThrow(expect.objectContaining({ code: 'invalid_read', message: expect.stringContaining('at most 500') }));
    expect(() => c.send({ type: 'read', ids: ['x'.repeat(200)] })).toThrow(expect.objectContaining({ code: 'invalid_read' }));
    const big = { type: 'register', os: 'android', token: 'é'.repeat(40_000) } as const; // 80,000 bytes of UTF-8
    expect(() => c.send(big)).toThrow(expect.objectContaining({ code: 'frame_too_large', closeCode: undefined }));
    expect(last().sent.length).toBe(before);
    c.send({ type: 'register', os: 'android', token: 'a'.repeat(4096) });
    expect(last().sent.length).toBe(before + 1);
    c.stop();
  });

  it('acks every message, shows each id once, also across reconnects', async () => {
    const { c, shown } = client();
    c.start();
    await connectOpen();
    const first = last();
    first.frame(msg('m1'));
    first.frame(msg('m2'));
    first.frame(msg('m1'));
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    last().open();
    last().welcome();
    last().frame(msg('m2')); // redelivered after the reconnect
    last().frame(msg('m3'));
    expect(shown).toEqual(['m1', 'm2', 'm3']);
    expect(first.sent.filter((f) => f.type === 'ack').map((f) => f.id)).toEqual(['m1', 'm2', 'm1']);
    expect(last().sent.filter((f) => f.type === 'ack').map((f) => f.id)).toEqual(['m2', 'm3']);
    c.stop();
  });

  it('resends the current presence after every reconnect', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    c.setPresence({ state: 'inactive', reason: 'screen_locked' });
    expect(last().sent.at(-1)).toEqual({ type: 'presence', state: 'inactive', reason: 'screen_locked' });
    last().serverClose(1001, 'shutting down');
    await vi.advanceTimersByTimeAsync(500);
    last().open();
    last().welcome();
    expect(last().sent).toEqual([{ type: 'hello', token: 'tok' }, { type: 'presence', state: 'inactive', reason: 'screen_locked' }]);
    c.stop();
  });

  it('several URLs (gateways without a load balancer): the next one after a lost or failed connection, the same while it holds', async () => {
    const urls = ['ws://a/v1/ws', 'ws://b/v1/ws', 'ws://c/v1/ws'];
    const { c } = client('tok', { url: urls });
    c.start();
    await connectOpen();
    expect(last().url).toBe(urls[0]);
    last().serverClose(1001, 'shutting down'); // a node going away: try the next
    await vi.advanceTimersByTimeAsync(500);
    expect(last().url).toBe(urls[1]);
    last().serverClose(1006, ''); // never opened (that gateway is down too)
    await vi.advanceTimersByTimeAsync(5_000);
    expect(last().url).toBe(urls[2]);
    last().open();
    last().welcome();
    expect(c.state).toBe('open');
    last().serverClose(1006, ''); // lost: around the ring to the first again
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ScriptedSocket.all.map((sock) => sock.url)).toEqual([urls[0], urls[1], urls[2], urls[0]]);
    c.stop();
    expect(() => client('tok', { url: [] })).toThrow('give at least one URL');
  });

  it('pings every welcome.heartbeatMs and reconnects when nothing comes back for two intervals', async () => {
    const { c, disconnects } = client();
    c.start();
    await connectOpen();
    const s = last();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.types().filter((t) => t === 'ping')).toHaveLength(1);
    s.frame({ type: 'pong' });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.types().filter((t) => t === 'ping')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(20_000); // no pong since: dead
    expect(s.closedWith?.code).toBe(4000);
    expect(disconnects.at(-1)?.error.code).toBe('connection_lost');
    expect(ScriptedSocket.all.length).toBe(1);
    await vi.advanceTimersByTimeAsync(disconnects.at(-1)!.retryInMs!);
    expect(ScriptedSocket.all.length).toBe(2);
    c.stop();
  });

  it('4409 replaced: stops, does not reconnect', async () => {
    const { c, stopped } = client();
    c.start();
    await connectOpen();
    last().serverClose(4409, 'replaced');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(ScriptedSocket.all).toHaveLength(1);
    expect(c.state).toBe('stopped');
    expect(stopped[0]).toMatchObject({ code: 'replaced', closeCode: 4409 });
    expect(stopped[0]!.message).toMatch(/not reconnecting/);
  });

  it('4401 with a token function: asks for a new token and reconnects', async () => {
    const tokens = ['expired-one', 'fresh-one'];
    const { c, disconnects } = client(async () => tokens.shift()!);
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().serverClose(4401, 'expired');
    expect(disconnects[0].error).toMatchObject({ code: 'unauthenticated', reason: 'expired' });
    expect(disconnects[0].error.message).toMatch(/get a new token/);
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs!);
    last().open();
    expect(last().sent[0]).toEqual({ type: 'hello', token: 'fresh-one' });
    c.stop();
  });

  it('4401 and the token function returns the refused token again: stops instead of reconnecting forever', async () => {
    let calls = 0;
    const { c, disconnects, stopped } = client(async () => (++calls, 'stale'));
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().serverClose(4401, 'expired');
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs!);
    expect(calls).toBe(2);
    expect(ScriptedSocket.all).toHaveLength(1); // no second connection with a token that cannot pass
    expect(c.state).toBe('stopped');
    expect(stopped[0]).toMatchObject({ code: 'unauthenticated', closeCode: 4401, reason: 'expired' });
    expect(stopped[0]!.message).toMatch(/returned the token the server just refused \(expired\)/);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toBe(2);
  });

  it('4401 "not yet valid": the same token is tried again after backoff (it may pass once its nbf is reached)', async () => {
    const { c, disconnects, stopped } = client(async () => 'early');
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().serverClose(4401, 'not yet valid');
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs!);
    expect(ScriptedSocket.all).toHaveLength(2);
    last().open();
    expect(last().sent[0]).toEqual({ type: 'hello', token: 'early' });
    expect(stopped).toEqual([]);
    c.stop();
  });

  it('a token function that never settles counts as failed after tokenTimeoutMs and is asked again after backoff', async () => {
    let calls = 0;
    const { c, disconnects } = client(() => (++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve('late-but-good')));
    c.start();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(c.state).toBe('connecting');
    expect(disconnects).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(disconnects[0].error).toMatchObject({ code: 'token_failed', message: expect.stringContaining('no token within 10000 ms') });
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs!);
    last().open();
    expect(calls).toBe(2);
    expect(last().sent[0]).toEqual({ type: 'hello', token: 'late-but-good' });
    c.stop();
  });

  it('4401 with a fixed token: stops with the reason, since only a new token could help', async () => {
    const { c, stopped } = client('fixed');
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().serverClose(4401, 'bad signature');
    expect(c.state).toBe('stopped');
    expect(stopped[0]).toMatchObject({ code: 'unauthenticated', reason: 'bad signature' });
    expect(stopped[0]!.message).toMatch(/token function/);
  });

  it('4429 rate limited: waits at least 30 s before reconnecting', async () => {
    const { c, disconnects } = client();
    c.start();
    await connectOpen();
    last().serverClose(4429, 'too many frames');
    expect(disconnects[0].error.code).toBe('rate_limited');
    expect(disconnects[0].retryInMs).toBeGreaterThanOrEqual(30_000);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(ScriptedSocket.all).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs! - 29_999);
    expect(ScriptedSocket.all).toHaveLength(2);
    c.stop();
  });

  it('backs off with growing jittered delays while the node is unreachable, and resets after a welcome', async () => {
    const { c, disconnects } = client();
    c.start();
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(0);
      last().serverClose(1006);
      await vi.advanceTimersByTimeAsync(disconnects.at(-1)!.retryInMs!);
    }
    expect(disconnects.map((d) => d.retryInMs)).toEqual([250, 500, 1000, 2000, 4000]);
    last().open();
    last().welcome();
    last().serverClose(1006);
    expect(disconnects.at(-1)!.retryInMs).toBe(250);
    c.stop();
  });

  it('reconnect() drops the socket and connects again at once; stop() closes with 1000', async () => {
    const { c } = client();
    c.start();
    await connectOpen();
    const first = last();
    c.reconnect();
    expect(first.closedWith?.code).toBe(4000);
    await vi.advanceTimersByTimeAsync(0);
    expect(ScriptedSocket.all).toHaveLength(2);
    first.serverClose(4000); // the old socket's late close is ignored
    expect(c.state).toBe('connecting');
    c.stop();
    expect(last().closedWith?.code).toBe(1000);
  });

  it('without a WebSocket (Node 20) the constructor says to pass one', () => {
    const saved = (globalThis as any).WebSocket;
    (globalThis as any).WebSocket = undefined;
    try {
      expect(() => new SwitchboardClient({ url: 'ws://x', token: 't' })).toThrow(/pass the `ws` package/);
    } finally {
      (globalThis as any).WebSocket = saved;
    }
  });
});

describe('backoff and close codes', () => {
  it('full jitter within [0, min(max, initial * 2^n)]', () => {
    expect(backoffDelay(0, {}, () => 0.999)).toBe(499);
    expect(backoffDelay(3, {}, () => 0.999)).toBe(3996);
    expect(backoffDelay(40, {}, () => 0.999)).toBe(29_970);
    expect(backoffDelay(5, {}, () => 0)).toBe(0);
    expect(rateLimitedDelay({}, () => 0)).toBe(30_000);
  });

  it.each([
    [4401, 'unauthenticated', 'new_token'],
    [4409, 'replaced', 'never'],
    [4429, 'rate_limited', 'rate_limited'],
    [4400, 'protocol_violation', 'never'],
    [4403, 'forbidden', 'never'],
    [4408, 'hello_timeout', 'backoff'],
    [1001, 'going_away', 'soon'],
    [1006, 'connection_lost', 'backoff'],
  ])('close %i is %s, action %s', (code, name, action) => {
    const c = classifyClose(code, 'why');
    expect(c.error).toBeInstanceOf(ClientError);
    expect(c.error.code).toBe(name);
    expect(c.action).toBe(action);
    expect(c.error.message).toContain(`closed ${code} (why)`);
  });
});
