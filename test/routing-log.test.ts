import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { RoutingSummary, logDecision } from '../base/routing-log.js';
import { ManualClock } from './support/manual-clock.js';

/** What operators read: one debug line per routing decision, one info summary per interval. */

function captured(level: string) {
  const lines: any[] = [];
  const out = new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  return { log: createLogger(level, out), lines };
}
// pino writes to a plain Writable synchronously; one turn of the event loop lets any deferred write through.
const flush = () => new Promise((r) => setImmediate(r));

describe('logDecision', () => {
  const event = {
    id: 'm1', route: 'mobile' as const, reason: 'idle' as const, at: 1, user: 'alice', node: 'n1',
    targets: [{ device: 'iphone', via: 'apns' as const }, { device: 'desk', via: 'pc' as const }],
  };

  it('one debug line: user, id, route, reason, device:via targets', async () => {
    const { log, lines } = captured('debug');
    logDecision(log, event);
    await flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 20, msg: 'routed', user: 'alice', id: 'm1', route: 'mobile', reason: 'idle', targets: ['iphone:apns', 'desk:pc'] });
  });

  it('nothing at info', async () => {
    const { log, lines } = captured('info');
    logDecision(log, event);
    await flush();
    expect(lines).toEqual([]);
  });
});

describe('RoutingSummary', () => {
  it('logs what happened since the previous line, once per interval; 0 turns it off', async () => {
    const metrics = new Metrics();
    const clock = new ManualClock();
    const { log, lines } = captured('info');
    const summary = new RoutingSummary(metrics, log, clock, 60_000);
    summary.start();
    await flush();
    metrics.messagesAccepted.inc({ source: 'http' }, 3);
    metrics.messagesAccepted.inc({ source: 'nats' }, 2);
    metrics.messagesRouted.inc({ route: 'pc' }, 4);
    metrics.messagesRouted.inc({ route: 'mobile' });
    metrics.pushOutcomes.inc({ vendor: 'apns', outcome: 'ok' });
    metrics.sessions.inc({ kind: 'pc' });
    clock.advance(59_999);
    await flush();
    expect(lines).toEqual([]);
    clock.advance(1);
    await flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'summary', accepted: 5, duplicates: 0, routed: { pc: 4, mobile: 1 }, pushes: { ok: 1 }, ackTimeouts: 0, sessions: { pc: 1 } });
    metrics.messagesRouted.inc({ route: 'pc' });
    clock.advance(60_000);
    await flush();
    expect(lines[1]).toMatchObject({ accepted: 0, routed: { pc: 1 }, pushes: {} });
    // Stopping writes what the last, unfinished interval holds (a node stopping in a rolling restart), then no more.
    metrics.messagesRouted.inc({ route: 'held' }, 2);
    clock.advance(10_000);
    await summary.stop();
    await flush();
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ msg: 'summary', final: true, routed: { held: 2 } });
    clock.advance(600_000);
    await flush();
    expect(lines).toHaveLength(3);
    await summary.stop(); // once
    expect(lines).toHaveLength(3);

    const off = new RoutingSummary(metrics, log, clock, 0);
    off.start();
    expect(clock.pending).toBe(0);
    await off.stop();
    await flush();
    expect(lines).toHaveLength(3);
  });
});
