import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENT_KEEPALIVE_MS, EVENT_STREAM_MAX_BUFFERED_BYTES, EventStream } from '../gateway/event-stream.js';
import type { TokenRemovedEvent } from '../protocol/index.js';
import { ManualClock } from './support/manual-clock.js';
import { until } from './support/ws-client.js';

/** `GET /v1/events` on a real loopback server, its timers on a manual clock and its events from the test. */
function setup() {
  const clock = new ManualClock();
  let emit: ((e: TokenRemovedEvent) => void) | undefined;
  const stream = new EventStream({ clock, source: { subscribe: (f) => { emit = f; return () => { emit = undefined; }; } } });
  const server = createServer((_req, res) => stream.open(res));
  return { clock, stream, server, emit: (e: TokenRemovedEvent) => emit?.(e), subscribed: () => emit !== undefined };
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as { port: number }).port;
}

const event: TokenRemovedEvent = { user: 'alice', device: 'pixel', os: 'android', reason: 'dead' };

describe('EventStream', () => {
  it('subscribes while a stream is open, sends keep-alive comments when idle, and only the section 3 fields', async () => {
    const t = setup();
    server = t.server;
    const port = await listen(t.server);
    expect(t.subscribed()).toBe(false);
    let text = '';
    const req = request({ port, host: '127.0.0.1', path: '/' }, (res) => res.on('data', (c: Buffer) => { text += c.toString(); }));
    req.end();
    await until(() => t.subscribed(), 5000, 'subscribed');
    t.emit({ ...event, token: 'secret-token' } as TokenRemovedEvent);
    await until(() => text.includes('event: token_removed'), 5000, 'the event');
    expect(text).toContain(`data: ${JSON.stringify(event)}\n\n`);
    expect(text).not.toContain('secret-token');
    t.clock.advance(EVENT_KEEPALIVE_MS);
    await until(() => text.includes(': keep-alive'), 5000, 'a keep-alive');
    req.destroy();
    await until(() => !t.subscribed() && t.stream.listeners === 0, 5000, 'unsubscribed');
    expect(t.clock.pending).toBe(0); // no keep-alive timer left
  });

  it(`cuts off a client that does not read once over ${EVENT_STREAM_MAX_BUFFERED_BYTES} bytes wait; a reading one keeps its stream`, async () => {
    const t = setup();
    server = t.server;
    const port = await listen(t.server);
    const stalled = connect(port, '127.0.0.1');
    stalled.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    stalled.pause(); // reads nothing
    const closed = new Promise<void>((r) => stalled.on('close', () => r()));
    let received = 0;
    const reader = request({ port, host: '127.0.0.1', path: '/' }, (res) => res.on('data', (c: Buffer) => { received += c.length; }));
    reader.end();
    await until(() => t.stream.listeners === 2, 5000, 'two streams');
    const big: TokenRemovedEvent = { ...event, device: 'd'.repeat(4000) };
    for (let i = 0; i < 2000 && t.stream.listeners === 2; i++) {
      t.emit(big);
      await new Promise((r) => setImmediate(r));
    }
    await until(() => t.stream.listeners === 1, 10_000, 'the stalled stream cut');
    stalled.resume();
    await closed;
    expect(received).toBeGreaterThan(EVENT_STREAM_MAX_BUFFERED_BYTES);
    reader.destroy();
  });
});
