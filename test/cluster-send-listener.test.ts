import { headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { declaresJson, SendListener } from '../cluster/send-listener.js';
import type { ChatMessage } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';

/**
 * `switchboard.send` and `switchboard.send.batch` are answered like the HTTP call (PROTOCOL.md section 3), 413s
 * included: a message that could never be pushed is `payload_too_large` whatever our own limits (field sizes, the
 * 64 KiB body limit) also say. A fake NATS connection hands the listener its requests.
 */

const packr = new Packr({ useRecords: false });

function fakeListener() {
  const callbacks = new Map<string, (err: Error | null, m: Msg) => void>();
  const nc = {
    subscribe: (subject: string, opts: { callback: (err: Error | null, m: Msg) => void }) => {
      callbacks.set(subject, opts.callback);
      return { unsubscribe() {} };
    },
  } as unknown as NatsConnection;
  const accepted: ChatMessage[] = [];
  const accept = async (msg: ChatMessage) => (accepted.push(msg), 'accepted' as const);
  new SendListener({ nc, subject: 'switchboard.send', batchSubject: 'switchboard.send.batch', accept, acceptMany: (msgs) => acceptEach(accept, msgs), now: () => 1 });
  /** One request in MessagePack (the default) or JSON; resolves with the decoded reply. */
  const request = (subject: string, body: unknown, json = false): Promise<any> => new Promise((resolve) => {
    const h = headers();
    h.set('Content-Type', 'application/json');
    const m = {
      subject, reply: '_INBOX.x', data: json ? new TextEncoder().encode(JSON.stringify(body)) : packr.pack(body),
      headers: json ? h : undefined,
      respond: (bytes: Uint8Array) => (resolve(json ? JSON.parse(new TextDecoder().decode(bytes)) : packr.unpack(bytes)), true),
    };
    callbacks.get(subject)!(null, m as unknown as Msg);
  });
  return { request, accepted };
}

const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'vvvv']));

describe('switchboard.send: the refusal codes of section 3', () => {
  it.each([false, true])('json %s: payload_too_large over our own field limits and over the 64 KiB limit; body_too_large for an oversize text', async (json) => {
    const { request, accepted } = fakeListener();
    const send = (body: unknown) => request('switchboard.send', body, json);
    expect(await send({ id: 'a', to: 'bob', title: 'x'.repeat(4096) })).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await send({ id: 'b', to: 'bob', data: keys(400) })).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await send({ id: 'c', to: 'bob', title: 'x'.repeat(70_000) })).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await send({ id: 'd', to: 'bob', title: 'hi', text: 'x'.repeat(70_000) })).toMatchObject({ error: { code: 'body_too_large' } });
    expect(await send({ id: 'e', to: 'bob', title: 'x'.repeat(1025) })).toMatchObject({ error: { code: 'invalid_request', message: expect.stringContaining('title') } });
    expect(await send({ id: 'f', to: 'bob', title: 'fits' })).toEqual({ id: 'f', status: 'accepted' });
    expect(accepted.map((m) => m.id)).toEqual(['f']);
  });

  it('switchboard.send.batch answers each message the same way', async () => {
    const { request } = fakeListener();
    const reply = await request('switchboard.send.batch', { messages: [{ id: 'a', to: 'bob', title: 'x'.repeat(4096) }, { id: 'b', to: 'bob', data: keys(400) }, { id: 'c', to: 'bob' }] });
    expect(reply.results.map((r: any) => r.status ?? r.error.code)).toEqual(['payload_too_large', 'payload_too_large', 'accepted']);
  });
});

describe('declaresJson (section 3: JSON with Content-Type: application/json, else MessagePack)', () => {
  const with_ = (name: string, value: string) => {
    const h = headers();
    h.set(name, value);
    return h;
  };
  it('takes the header in any case and JSON types as HTTP does', () => {
    for (const [name, value] of [['Content-Type', 'application/json'], ['content-type', 'application/json'], ['CONTENT-TYPE', 'Application/JSON; charset=utf-8'], ['Content-Type', 'application/problem+json']]) {
      expect(declaresJson(with_(name, value)), `${name}: ${value}`).toBe(true);
    }
    for (const [name, value] of [['Content-Type', 'application/msgpack'], ['Content-Type', 'text/plain'], ['X-Type', 'application/json']]) {
      expect(declaresJson(with_(name, value)), `${name}: ${value}`).toBe(false);
    }
    expect(declaresJson(undefined)).toBe(false);
  });
});
