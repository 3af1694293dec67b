import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { ApnsSender } from '../senders/apns.js';
import { ProviderToken } from '../senders/apns-token.js';
import type { PushJob } from '../senders/types.js';
import { ManualClock } from './support/manual-clock.js';
import { startApnsServer, type ApnsServer, type ApnsServerOptions } from './vendors/apns-server.js';

/**
 * PROTOCOL.md section 5 and Apple's rules for provider tokens ("Establishing a token-based connection to APNs"), in
 * virtual time: the sender and the strict stand-in share a manual clock, so hours pass without waiting.
 */

const MIN = 60_000;
const tokenN = (n: number) => n.toString(16).padStart(64, '0');
const job = (n: number, message: Partial<ChatMessage> = {}): PushJob => ({
  jobId: `m${n}:d`, user: 'u', device: 'd', vendor: 'apns', token: tokenN(n),
  message: { id: `m${n}`, to: 'u', from: 'alice', text: 'hello', acceptedAt: 0, ...message },
});

let server: ApnsServer | undefined;
let sender: ApnsSender | undefined;
afterEach(async () => {
  await sender?.close();
  await server?.close();
  sender = server = undefined;
});

async function start(clock: ManualClock, serverOpts: ApnsServerOptions = {}, serverSkewMs = 0): Promise<{ server: ApnsServer; sender: ApnsSender }> {
  server = await startApnsServer({ now: () => clock.now() + serverSkewMs, ...serverOpts });
  sender = new ApnsSender(
    { endpoint: server.origin, keyFile: server.keyFile, keyId: server.keyId, teamId: server.teamId, topic: server.topic },
    { ca: server.caPem, now: () => clock.now(), maxConnections: 1 },
  );
  return { server, sender };
}

/** A bare HTTP/2 client on one connection, to show what the stand-in refuses. */
async function rawClient(s: ApnsServer): Promise<{ post(jwt: string, body?: string): Promise<{ status: number; reason?: string }>; close(): void }> {
  const session = http2.connect(s.origin, { ca: s.caPem });
  return {
    post: (jwt, body = '{"aps":{"alert":"hi"}}') => new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': `/3/device/${tokenN(1)}`, authorization: `bearer ${jwt}`, 'apns-topic': s.topic, 'apns-push-type': 'alert' });
      let status = 0;
      let text = '';
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('data', (c: Buffer) => { text += c.toString(); });
      req.on('end', () => resolve({ status, ...(text ? { reason: (JSON.parse(text) as { reason: string }).reason } : {}) }));
      req.on('error', reject);
      req.end(body);
    }),
    close: () => session.close(),
  };
}

describe('the strict APNs stand-in', () => {
  it("answers 429 TooManyProviderTokenUpdates to a new provider token within 20 minutes on a connection, 403 ExpiredProviderToken after an hour, 413 over 4096 bytes", async () => {
    const clock = new ManualClock();
    server = await startApnsServer({ now: () => clock.now() });
    const sign = () => ProviderToken.load(server!.keyFile, server!.keyId, server!.teamId, () => clock.now()).current();
    const client = await rawClient(server);
    try {
      const first = sign();
      expect(await client.post(first)).toEqual({ status: 200 });
      clock.advance(19 * MIN);
      expect(await client.post(sign())).toEqual({ status: 429, reason: 'TooManyProviderTokenUpdates' });
      expect(await client.post(first)).toEqual({ status: 200 }); // the current token still works
      clock.advance(2 * MIN);
      const second = sign();
      expect(await client.post(second)).toEqual({ status: 200 }); // 21 minutes after the last new one
      clock.advance(61 * MIN);
      expect(await client.post(second)).toEqual({ status: 403, reason: 'ExpiredProviderToken' });
      const third = sign();
      expect(await client.post(third)).toEqual({ status: 200 }); // a new token right after "expired" is fine
      expect(await client.post(third, JSON.stringify({ aps: { alert: 'x'.repeat(4100) } }))).toEqual({ status: 413, reason: 'PayloadTooLarge' });
    } finally {
      client.close();
    }
  });
});

describe('APNs provider token (PROTOCOL.md section 5)', () => {
  it('is signed again no more often than every 20 minutes: one token per 50 minutes over two hours of pushes, none refused', async () => {
    const clock = new ManualClock();
    const { server, sender } = await start(clock);
    for (let t = 0, n = 0; t <= 120; t += 5, n++) {
      expect(await sender.send(job(n))).toMatchObject({ outcome: 'ok' });
      clock.advance(5 * MIN);
    }
    expect(server.requests.every((r) => r.answer === 200)).toBe(true);
    expect(sender.tokensSigned).toBe(3); // at 0, 50 and 100 minutes
  });

  it('after 403 ExpiredProviderToken signs a new token at once and resends the push', async () => {
    const clock = new ManualClock();
    const { server, sender } = await start(clock);
    expect(await sender.send(job(1))).toMatchObject({ outcome: 'ok' });
    server.setBehavior({ type: 'error', status: 403, reason: 'ExpiredProviderToken' }, { times: 1 });
    clock.advance(MIN);
    expect(await sender.send(job(2))).toMatchObject({ outcome: 'ok' });
    expect(server.requests.map((r) => r.reason ?? r.answer)).toEqual([200, 'ExpiredProviderToken', 200]);
    expect(sender.tokensSigned).toBe(2);
  });

  it('does not sign on every push when APNs finds every token expired (a clock off by hours): at most once per 20 minutes', async () => {
    const clock = new ManualClock();
    // APNs' clock is two hours ahead of ours: every token we sign is "more than one hour old".
    const { server, sender } = await start(clock, {}, 120 * MIN);
    for (let n = 0; n < 6; n++) {
      expect(await sender.send(job(n))).toMatchObject({ outcome: 'retry', reason: 'apns 403 ExpiredProviderToken' });
      clock.advance(MIN);
    }
    // The first push signs, is refused, signs once more at once (Apple's exception); later pushes reuse that token.
    expect(sender.tokensSigned).toBe(2);
    expect(server.requests.filter((r) => r.reason === 'TooManyProviderTokenUpdates')).toEqual([]);
    clock.advance(20 * MIN);
    await sender.send(job(7));
    expect(sender.tokensSigned).toBe(3);
  });
});

describe('GOAWAY', () => {
  it('loses no push when APNs sends GOAWAY now and then: refused requests go out again on a new connection', async () => {
    const clock = new ManualClock();
    const { server, sender } = await start(clock, { goawayEvery: 100 });
    const n = 400;
    const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => sender.send(job(i))));
    expect(outcomes.filter((o) => o.outcome !== 'ok')).toEqual([]);
    expect(server.stats().goaways).toBeGreaterThanOrEqual(3);
    expect(server.stats().errors).toEqual([]);
    // Every device got its push exactly once.
    const delivered = server.requests.filter((r) => r.answer === 200).map((r) => r.token);
    expect(delivered).toHaveLength(n);
    expect(new Set(delivered).size).toBe(n);
    expect(sender.stats.connectionsOpened).toBeGreaterThanOrEqual(4);
    expect(sender.stats.resent).toBeGreaterThan(0);
  });
});
