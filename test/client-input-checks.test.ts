import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardClient, type Disconnect } from '../clients/client.js';
import { ScriptedSocket } from './support/scripted-socket.js';
import { ClientError } from '../clients/close-codes.js';
import { mergeQueuedReads } from '../clients/read-frames.js';
import { INACTIVE_REASONS, PRESENCE_STATES } from '../clients/wire.js';
import { INACTIVE_REASONS as SERVER_INACTIVE_REASONS } from '../protocol/frames.js';

/**
 * What the client core does with bad input from the app (PROTOCOL.md section 2): constructor options, a token function
 * that gives something other than a token, a presence section 2 does not have or the session's kind may not report,
 * a `send()` argument that is no frame, and reads queued while offline.
 * A scripted WebSocket and virtual time; the same over a real node is client-read-queue.int.test.ts.
 */

const last = () => ScriptedSocket.all.at(-1)!;
/** A client token of section 2's shape (header.payload.signature, base64url JSON), unsigned: only its claims matter here. */
const jwt = (claims: object) => ['{"alg":"HS256"}', JSON.stringify(claims)].map((part) => Buffer.from(part).toString('base64url')).join('.') + '.sig';
const presences = (s: ScriptedSocket) => s.sent.filter((f) => f.type === 'presence');

function client(token: unknown) {
  const c = new SwitchboardClient({ url: 'ws://x/v1/ws', token: token as string, WebSocket: ScriptedSocket, random: () => 0.5 });
  const disconnects: Disconnect[] = [];
  const stopped: (ClientError | undefined)[] = [];
  c.on('disconnect', (d) => disconnects.push(d));
  c.on('stopped', (e) => stopped.push(e));
  return { c, disconnects, stopped };
}

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof ClientError ? e.code : `not a ClientError: ${String(e)}`;
  }
  return undefined;
};

beforeEach(() => {
  ScriptedSocket.all = [];
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('client input checks', () => {
  it('the constructor names a missing or unusable url or token (invalid_options)', () => {
    const make = (opts: object) => () => new SwitchboardClient({ WebSocket: ScriptedSocket, ...opts } as never);
    expect(codeOf(make({ token: 't' }))).toBe('invalid_options');
    expect(codeOf(make({ url: [], token: 't' }))).toBe('invalid_options');
    expect(codeOf(make({ url: ['ws://a', 7], token: 't' }))).toBe('invalid_options');
    expect(codeOf(make({ url: 'ws://a' }))).toBe('invalid_options');
    expect(codeOf(make({ url: 'ws://a', token: '' }))).toBe('invalid_options');
    expect(codeOf(make({ url: 'ws://a', token: { token: 't' } }))).toBe('invalid_options');
    expect(() => make({ token: 't' })()).toThrow(/options\.url/);
    expect(() => make({ url: 'ws://a' })()).toThrow(/options\.token/);
    expect(codeOf(make({ url: ['ws://a', 'ws://b'], token: () => 't' }))).toBeUndefined();
  });

  it.each([
    ['an object (r.json() of an endpoint that answers the bare token)', { token: 't' }, /gave an object, not a token string/],
    ['an empty string', '', /an empty string/],
    ['undefined', undefined, /gave undefined/],
  ])('a token function that gives %s: token_failed, nothing sent to the server, asked again after backoff', async (_, given, message) => {
    const calls: number[] = [];
    const { c, disconnects, stopped } = client(() => {
      calls.push(Date.now());
      return calls.length === 1 ? given : 'good';
    });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(ScriptedSocket.all).toHaveLength(0);
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0].error.code).toBe('token_failed');
    expect(disconnects[0].error.message).toMatch(message);
    expect(disconnects[0].retryInMs).toBeTypeOf('number');
    expect(stopped).toEqual([]);
    await vi.advanceTimersByTimeAsync(disconnects[0].retryInMs!);
    expect(calls).toHaveLength(2);
    last().open();
    expect(last().sent).toEqual([{ type: 'hello', token: 'good' }]);
    c.stop();
  });

  it('setPresence() refuses a state or reason section 2 does not have (invalid_presence) and keeps the last good one', async () => {
    expect([...INACTIVE_REASONS].sort()).toEqual([...SERVER_INACTIVE_REASONS].sort());
    expect([...PRESENCE_STATES].sort()).toEqual(['active', 'background', 'foreground', 'inactive']);
    const { c } = client('tok');
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    c.setPresence({ state: 'inactive', reason: 'screen_locked' });
    for (const bad of [{ state: 'away' }, { state: 'inactive' }, { state: 'inactive', reason: 'lunch' }, undefined, null, 'active']) {
      expect(codeOf(() => c.setPresence(bad as never))).toBe('invalid_presence');
    }
    expect(() => c.setPresence({ state: 'inactive', reason: 'lunch' } as never)).toThrow(/idle, screen_locked, client_locked/);
    expect(last().sent.filter((f) => f.type === 'presence')).toEqual([{ type: 'presence', state: 'inactive', reason: 'screen_locked' }]);
    c.reconnect();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    expect(last().sent.filter((f) => f.type === 'presence')).toEqual([{ type: 'presence', state: 'inactive', reason: 'screen_locked' }]);
    c.stop();
  });

  it('setPresence() refuses the other kind\'s state (presence_not_allowed): the kind from welcome.kind, and before connecting from the token; the last good presence stays and is the one re-sent', async () => {
    const { c } = client('tok'); // no kind claim: the kind is known from the welcome
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    c.setPresence({ state: 'active' });
    for (const state of ['foreground', 'background'] as const) {
      expect(codeOf(() => c.setPresence({ state }))).toBe('presence_not_allowed');
      expect(codeOf(() => c.send({ type: 'presence', state }))).toBe('presence_not_allowed');
    }
    expect(() => c.setPresence({ state: 'foreground' })).toThrow(/a pc session cannot report presence\.state "foreground": a pc reports active or inactive/);
    expect(presences(last())).toEqual([{ type: 'presence', state: 'active' }]);
    c.reconnect();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    expect(presences(last())).toEqual([{ type: 'presence', state: 'active' }]);
    expect(c.kind).toBe('pc');
    c.stop();

    // A mobile token: known before any connection, from its kind claim.
    const mobile = client(jwt({ sub: 'u', dev: 'phone', kind: 'mobile', os: 'ios', exp: 2e9 })).c;
    mobile.setPresence({ state: 'background' });
    expect(codeOf(() => mobile.setPresence({ state: 'active' }))).toBe('presence_not_allowed');
    expect(codeOf(() => mobile.setPresence({ state: 'inactive', reason: 'idle' }))).toBe('presence_not_allowed');
    expect(mobile.kind).toBe('mobile');
    mobile.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome({ kind: 'mobile' });
    expect(presences(last())).toEqual([{ type: 'presence', state: 'background' }]);
    mobile.stop();
  });

  it('a presence set before the kind was known (token function) that welcome.kind refuses is not sent: presenceRefused, then forgotten', async () => {
    const { c } = client(() => 'tok');
    const refused: ClientError[] = [];
    c.on('presenceRefused', (e) => refused.push(e));
    expect(c.kind).toBeUndefined();
    c.setPresence({ state: 'foreground' });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    expect(refused.map((e) => e.code)).toEqual(['presence_not_allowed']);
    expect(presences(last())).toEqual([]);
    c.reconnect();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    expect(presences(last())).toEqual([]);
    expect(refused).toHaveLength(1);
    c.stop();
  });

  it('send() refuses an argument that is no client frame (invalid_frame), naming it; nothing is sent', async () => {
    const { c } = client('tok');
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    for (const bad of [undefined, null, 'ping', 42, [], {}, { type: 'typo' }, { type: 7 }]) {
      expect(codeOf(() => c.send(bad as never))).toBe('invalid_frame');
    }
    expect(() => c.send(undefined as never)).toThrow(/^send\(frame\): frame must be a client frame object with a type .* not undefined/);
    expect(() => c.send({ type: 'typo' } as never)).toThrow(/frame\.type must be one of hello, presence, .* not "typo"/);
    expect(last().sent.map((f) => f.type)).toEqual(['hello']);
    c.send({ type: 'ping' });
    expect(last().sent.map((f) => f.type)).toEqual(['hello', 'ping']);
    c.stop();
  });

  it('reads made offline one id at a time go out merged at the next welcome, in place among the other queued frames', async () => {
    const { c } = client('tok');
    for (let i = 0; i < 450; i++) c.read([`r${i}`]);
    c.send({ type: 'ping' });
    c.read(['s0']);
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    last().open();
    last().welcome();
    const sent = last().sent;
    expect(sent.map((f) => f.type)).toEqual(['hello', 'read', 'ping', 'read']);
    expect(sent[1].ids).toEqual(Array.from({ length: 450 }, (_, i) => `r${i}`));
    expect(sent[3].ids).toEqual(['s0']);
    c.stop();
  });

  it('every ClientErrorCode is documented in the README', () => {
    const source = readFileSync(new URL('../clients/close-codes.ts', import.meta.url), 'utf8');
    const union = source.slice(source.indexOf('export type ClientErrorCode'), source.indexOf('interface CloseSpec'));
    const codes = [...union.matchAll(/\|\s*'([a-z_]+)'/g)].map((m) => m[1]);
    expect(codes).toEqual(expect.arrayContaining(['invalid_argument', 'invalid_frame', 'presence_not_allowed', 'invalid_options']));
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    expect(codes.filter((code) => !readme.includes(`\`${code}\``))).toEqual([]);
  });

  it('mergeQueuedReads keeps each merged frame within 500 ids', () => {
    const frames = Array.from({ length: 1201 }, (_, i) => ({ type: 'read' as const, ids: [`m${i}`] }));
    const merged = mergeQueuedReads(frames);
    expect(merged.map((f) => (f.type === 'read' ? f.ids.length : 0))).toEqual([500, 500, 201]);
  });
});
