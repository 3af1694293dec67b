import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { buildHmsBody, HMS_MAX_TTL_SECONDS, HmsSender } from '../senders/hms.js';
import { hmsCountedBytes } from '../senders/payload.js';
import type { PushJob } from '../senders/types.js';
import type { VendorClientOptions } from '../senders/vendor-http.js';
import { startHmsServer, type HmsServer } from './vendors/hms-server.js';

const job = (over: Partial<ChatMessage> = {}, token = 'hms-token-1'): PushJob => ({
  jobId: 'm1:d1', user: 'u1', device: 'd1', vendor: 'hms', token,
  message: { id: 'm1', to: 'u1', from: 'alice', title: 'Alice', text: 'hello', data: { room: 'r1' }, collapseKey: 'room-r1', priority: 'high', ttlSeconds: 60, acceptedAt: Date.now(), ...over },
});

type Sent = {
  validate_only: boolean;
  message: { token: string[]; data: string; android: { urgency: string; ttl?: string; notification?: { title: string; body: string; click_action: { type: number }; tag?: string } } };
};

describe('Huawei Push Kit sender against the local Push Kit', () => {
  let server: HmsServer | undefined;
  let sender: HmsSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  async function start(options: VendorClientOptions = {}, tls = false): Promise<{ server: HmsServer; sender: HmsSender }> {
    server = await startHmsServer({ tls });
    sender = new HmsSender(server.creds, { ...(server.ca ? { ca: server.ca } : {}), ...options });
    return { server, sender };
  }

  it('gets a client-credentials token and sends the v1 messages:send body', async () => {
    const { server, sender } = await start();
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok', vendorId: expect.any(String) });

    const [tokenReq] = server.tokenRequests();
    expect(tokenReq.parsed).toEqual({ grant_type: 'client_credentials', client_id: server.creds.clientId, client_secret: server.creds.clientSecret });

    const [send] = server.sends();
    expect(send.path).toBe(`/v1/${server.creds.appId}/messages:send`);
    expect(send.headers.authorization).toMatch(/^Bearer DQEBA/);
    const sent = send.parsed as Sent;
    expect(sent).toMatchObject({
      validate_only: false,
      message: {
        token: ['hms-token-1'],
        android: { urgency: 'HIGH', ttl: '60s', notification: { title: 'Alice', body: 'hello', click_action: { type: 3 }, tag: 'room-r1' } },
      },
    });
    expect(JSON.parse(sent.message.data)).toEqual({ messageId: 'm1', sender: 'alice', data: { room: 'r1' } });
  });

  it('puts the unread count on alerts as the launcher badge when the entry activity is configured, capped at 99', async () => {
    server = await startHmsServer();
    sender = new HmsSender({ ...server.creds, badgeClass: 'com.example.chat.MainActivity' });
    const badgeOf = (i: number) => (server!.sends()[i].parsed as { message: { android: { notification?: { badge?: unknown } } } }).message.android.notification?.badge;
    expect(await sender.send({ ...job(), badge: 7 })).toMatchObject({ outcome: 'ok' });
    expect(badgeOf(0)).toEqual({ class: 'com.example.chat.MainActivity', set_num: 7 });
    expect(await sender.send({ ...job(), badge: 1000 })).toMatchObject({ outcome: 'ok' });
    expect(badgeOf(1)).toEqual({ class: 'com.example.chat.MainActivity', set_num: 99 }); // Push Kit refuses set_num over 99
    expect(await sender.send({ ...job(), badge: 0 })).toMatchObject({ outcome: 'ok' });
    expect(badgeOf(2)).toEqual({ class: 'com.example.chat.MainActivity', set_num: 0 });
    // No unread count on the job, or a data-only message (no notification to carry it): no badge.
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(badgeOf(3)).toBeUndefined();
    expect(await sender.send({ ...job({ title: undefined, text: undefined }), badge: 3 })).toMatchObject({ outcome: 'ok' });
    expect(badgeOf(4)).toBeUndefined();
  });

  it('sends no badge without the entry activity (Push Kit refuses a badge without class), and the local Push Kit refuses one', async () => {
    const { server, sender } = await start();
    expect(await sender.send({ ...job(), badge: 4 })).toMatchObject({ outcome: 'ok' });
    const sent = server.sends()[0].parsed as { message: { android: { notification?: Record<string, unknown> } } };
    expect(sent.message.android.notification).not.toHaveProperty('badge');
    const raw = JSON.parse(server.sends()[0].body) as { message: { android: { notification: Record<string, unknown> } } };
    raw.message.android.notification.badge = { set_num: 4 };
    const refused = await fetch(`${server.creds.pushEndpoint}/v1/${server.creds.appId}/messages:send`, {
      method: 'POST', headers: { authorization: server.sends()[0].headers.authorization as string, 'content-type': 'application/json' }, body: JSON.stringify(raw),
    });
    expect(await refused.json()).toMatchObject({ code: '80100003', msg: expect.stringContaining('badge.class is required') });
  });

  it('never gives up text for the badge: without room for both, the push keeps its text and goes without the badge', async () => {
    server = await startHmsServer();
    const badgeClass = `com.example.${'a'.repeat(200)}.MainActivity`;
    const badge = { class: badgeClass, count: 2 };
    sender = new HmsSender({ ...server.creds, badgeClass });
    const text = 'y'.repeat(300);
    // Data sized so that the body with the whole text leaves 100 bytes: not enough for this badge (~250 bytes).
    const base = job({ data: { blob: '' }, text });
    const room = 4096 - hmsCountedBytes(base.message, text);
    const tight = { ...job({ data: { blob: 'x'.repeat(room - 100) }, text }), badge: 2 };
    expect(hmsCountedBytes(tight.message, text)).toBe(4096 - 100);
    expect(hmsCountedBytes(tight.message, '', false, badge)).toBeLessThanOrEqual(4096); // a shorter text would make room
    expect(await sender.send(tight)).toMatchObject({ outcome: 'ok' });
    const sent = server.sends()[0].parsed as { message: { android: { notification: Record<string, unknown> } } };
    expect(sent.message.android.notification).not.toHaveProperty('badge');
    expect(sent.message.android.notification.body).toBe(text);
    // Even no text leaves no room: still sent, whole text, no badge.
    const short = job({ data: { blob: '' }, text: 'hi' });
    const roomShort = 4096 - hmsCountedBytes(short.message, 'hi');
    const tighter = { ...job({ data: { blob: 'x'.repeat(roomShort - 20) }, text: 'hi' }), badge: 2 };
    expect(hmsCountedBytes(tighter.message, '', false, badge)).toBeGreaterThan(4096);
    expect(await sender.send(tighter)).toMatchObject({ outcome: 'ok' });
    expect((server.sends()[1].parsed as typeof sent).message.android.notification).toMatchObject({ body: 'hi' });
    expect((server.sends()[1].parsed as typeof sent).message.android.notification).not.toHaveProperty('badge');
    // With room for both, the same class rides along with the whole text.
    const roomy = buildHmsBody({ ...job({ text }), badge: 2 }, badgeClass)!;
    expect(roomy).toContain(`"badge":{"class":"${badgeClass}","set_num":2}`);
    expect(roomy).toContain(`"body":"${text}"`);
  });

  it('sends as android.ttl only what is left of the TTL counted from the acceptance (a message held 50 s of its 60)', async () => {
    const { server, sender } = await start();
    expect(await sender.send(job({ acceptedAt: Date.now() - 50_000, ttlSeconds: 60 }))).toMatchObject({ outcome: 'ok' });
    expect((server.sends()[0].parsed as Sent).message.android.ttl).toBe('10s');
  });

  it("sends a TTL over Push Kit's 15 days as 15 days, and the local Push Kit refuses a longer one", async () => {
    const { server, sender } = await start();
    expect(await sender.send(job({ ttlSeconds: 28 * 86400 }))).toMatchObject({ outcome: 'ok' });
    const [sent] = server.sends();
    expect((sent.parsed as Sent).message.android.ttl).toBe(`${HMS_MAX_TTL_SECONDS}s`);
    const raw = JSON.parse(sent.body) as Sent;
    raw.message.android.ttl = `${HMS_MAX_TTL_SECONDS + 1}s`;
    const refused = await fetch(`${server.creds.pushEndpoint}/v1/${server.creds.appId}/messages:send`, {
      method: 'POST', headers: { authorization: sent.headers.authorization as string, 'content-type': 'application/json' }, body: JSON.stringify(raw),
    });
    expect(await refused.json()).toMatchObject({ code: '80100003', msg: expect.stringContaining('ttl must be at most') });
  });

  it('the local Push Kit counts no device token in its 4096 bytes, as Push Kit does', async () => {
    const { server, sender } = await start();
    const longToken = 'T'.repeat(300);
    expect(await sender.send(job({}, longToken))).toMatchObject({ outcome: 'ok' });
    const [sent] = server.sends();
    const raw = JSON.parse(sent.body) as Sent & { message: { android: { notification: { body: string } } } };
    const room = 4096 - Buffer.byteLength(JSON.stringify({ ...raw, message: { ...raw.message, token: [] } }));
    raw.message.android.notification.body += 'x'.repeat(room);
    const post = (body: unknown) => fetch(`${server.creds.pushEndpoint}/v1/${server.creds.appId}/messages:send`, {
      method: 'POST', headers: { authorization: sent.headers.authorization as string, 'content-type': 'application/json' }, body: JSON.stringify(body),
    }).then((r) => r.json());
    expect(await post(raw)).toMatchObject({ code: '80000000' }); // 4096 bytes besides a 300-character token
    raw.message.android.notification.body += 'x';
    expect(await post(raw)).toMatchObject({ code: '80300008' });
  });

  it('reaches an https endpoint and sends normal priority as urgency NORMAL', async () => {
    const { server, sender } = await start({}, true);
    expect(await sender.send(job({ priority: 'normal', ttlSeconds: undefined }))).toMatchObject({ outcome: 'ok' });
    const sent = server.sends()[0].parsed as Sent;
    expect(sent.message.android.urgency).toBe('NORMAL');
    expect(sent.message.android).not.toHaveProperty('ttl');
  });

  it.each([
    ['illegal_token', 'dead_token', '80100000'],
    ['all_invalid', 'dead_token', '80300007'],
    ['flow_control', 'retry', '503'],
    ['internal', 'retry', '81000001'],
    ['bad_request', 'failed', '80100003'],
    ['drop', 'retry', 'hms unreachable'],
  ] as const)('maps %s to %s', async (answer, outcome, reason) => {
    const { server, sender } = await start();
    server.setBehavior({ answer });
    expect(await sender.send(job())).toMatchObject({ outcome, reason: expect.stringContaining(reason) });
  });

  it('reports a token Push Kit lists as illegal as dead', async () => {
    const { server, sender } = await start();
    server.invalidate('gone-token');
    expect(await sender.send(job({}, 'gone-token'))).toMatchObject({ outcome: 'dead_token', reason: expect.stringContaining('80300007') });
    expect(await sender.send(job({}, 'live-token'))).toMatchObject({ outcome: 'ok' });
  });

  it('names no device token in the reason of a partial success (it goes to the decision history and routed events)', async () => {
    const { server, sender } = await start();
    const token = 'IQAAAACy0kYdAAByLwSecretDeviceToken0123456789';
    server.setBehavior({ answer: 'illegal_token', times: 1 });
    const outcome = await sender.send(job({}, token));
    expect(outcome).toMatchObject({ outcome: 'dead_token', reason: expect.stringContaining('80100000') });
    expect(JSON.stringify(outcome)).not.toContain(token);
  });

  it('surfaces Retry-After of flow control as retryAfterMs', async () => {
    const { server, sender } = await start();
    server.setBehavior({ answer: 'flow_control', retryAfterSeconds: 12 });
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry', retryAfterMs: 12_000 });
  });

  it('gives up on a slow Push Kit after its timeout', async () => {
    const { server, sender } = await start({ timeoutMs: 200 });
    await sender.send(job());
    server.setBehavior({ delayMs: 10_000 });
    expect(await sender.send(job())).toMatchObject({ outcome: 'retry', reason: expect.stringContaining('no answer within 200 ms') });
  });

  it('shortens an oversize text so the body fits 4096 bytes', async () => {
    const { server, sender } = await start();
    expect(await sender.send(job({ text: '漢字'.repeat(4000) }))).toMatchObject({ outcome: 'ok' });
    const [send] = server.sends();
    expect(hmsCountedBytes(job().message, (send.parsed as Sent).message.android.notification!.body)).toBeLessThanOrEqual(4096);
    expect((send.parsed as Sent).message.android.notification!.body.endsWith('…')).toBe(true);
  });

  it('gives none of the text to the device token: Push Kit counts the body "excluding token" (server API, Sending Messages)', async () => {
    const { server, sender } = await start();
    const text = 'y'.repeat(200);
    const token = 'T'.repeat(400);
    // Data sized so that the body with the whole text is exactly 4096 bytes without its token, 4496 with it.
    const m = job({ text, data: { blob: '' } }).message;
    const full = job({ text, data: { blob: 'x'.repeat(4096 - hmsCountedBytes(m, text)) } }, token);
    expect(hmsCountedBytes(full.message, text)).toBe(4096);
    expect(await sender.send(full)).toMatchObject({ outcome: 'ok' });
    const [send] = server.sends();
    expect(send.raw.length).toBeGreaterThan(4096);
    expect((send.parsed as Sent).message.android.notification!.body).toBe(text);
  });

  it('reuses one token across sends and fetches a new one shortly before expiry', async () => {
    let offsetMs = 0;
    const { server, sender } = await start({ now: () => Date.now() + offsetMs });
    server.setTokenLifetime(3600);
    await Promise.all([1, 2, 3].map((n) => sender.send(job({ id: `m${n}` }))));
    expect(server.tokenRequests()).toHaveLength(1);
    offsetMs = 3541_000; // within the 60 s refresh margin of a 3600 s token
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(server.tokenRequests()).toHaveLength(2);
  });

  it('refreshes the token on 401 80200003 and resends once', async () => {
    const { server, sender } = await start();
    await sender.send(job());
    server.revokeTokens();
    expect(await sender.send(job())).toMatchObject({ outcome: 'ok' });
    expect(server.tokenRequests()).toHaveLength(2);
    expect(server.sends().map((s) => s.answer)).toEqual([200, 401, 200]);
    server.setBehavior({ answer: 'token_expired' });
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true, reason: expect.stringContaining('80200003') });
  });

  it('fails every send with the reason when the client credentials are wrong', async () => {
    server = await startHmsServer();
    sender = new HmsSender({ ...server.creds, clientSecret: 'wrong' });
    expect(await sender.send(job())).toMatchObject({ outcome: 'failed', config: true, reason: expect.stringContaining('invalid client') });
    expect(server.sends()).toHaveLength(0);
  });
});
