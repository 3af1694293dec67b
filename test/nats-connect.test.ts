import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger } from '../base/logger.js';
import { parseConfig } from '../runtime/config.js';
import { connectNats, natsOptions, withoutCredentials } from '../runtime/nats-connect.js';
import { StartError } from '../runtime/start-error.js';
import { ManualClock } from './support/manual-clock.js';

/** Start-up against an unreachable NATS (issue 8 part 5): bounded retries, a line per try, the URL named. */
describe('connectNats at start-up', () => {
  const config = parseConfig({
    SWITCHBOARD_NATS_URL: 'nats://alice:s3cret-pass@127.0.0.1:4999',
    SWITCHBOARD_JWT_SECRET: 'j'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32),
    SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS: '5000',
  });
  const refused = () => Promise.reject(Object.assign(new Error('connection refused'), { code: 'CONNECTION_REFUSED' }));

  function logged(): { log: ReturnType<typeof createLogger>; lines: any[]; text: () => string } {
    const lines: any[] = [];
    const chunks: string[] = [];
    const log = createLogger('info', new Writable({ write(c, _e, cb) { chunks.push(String(c)); lines.push(JSON.parse(String(c))); cb(); } }));
    return { log, lines, text: () => chunks.join('') };
  }

  it('retries once a second with one warn line per try, then fails naming the URL without its password', async () => {
    const clock = new ManualClock();
    const { log, lines, text } = logged();
    const connect = vi.fn(refused);
    const started = connectNats(config, { log, clock, connect }).catch((e: unknown) => e);
    for (let i = 0; i < 5; i++) {
      await vi.waitFor(() => expect(clock.pending).toBe(1));
      clock.advance(1000);
    }
    const err = await started;
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).message).toBe('NATS not reachable at nats://127.0.0.1:4999 (CONNECTION_REFUSED); tried 6 times over 5 s');
    expect(connect).toHaveBeenCalledTimes(6);
    await new Promise((r) => setImmediate(r));
    expect(lines.filter((l) => l.level === 40).map((l) => l.attempt)).toEqual([1, 2, 3, 4, 5]);
    expect(lines[0]).toMatchObject({ nats: 'nats://127.0.0.1:4999', err: 'CONNECTION_REFUSED' });
    expect(text()).not.toContain('s3cret-pass');
  });

  it('returns the connection as soon as NATS answers', async () => {
    const clock = new ManualClock();
    const { log } = logged();
    const nc = { fake: true };
    const connect = vi.fn().mockImplementationOnce(refused).mockResolvedValueOnce(nc);
    const started = connectNats(config, { log, clock, connect });
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    clock.advance(1000);
    expect(await started).toBe(nc);
  });

  it('never prints credentials of a URL', () => {
    expect(withoutCredentials('tls://u:p@nats.example:4222')).toBe('tls://nats.example:4222');
    expect(withoutCredentials('nats.example:4222')).toBe('nats.example:4222');
  });
});

describe('NATS connection options', () => {
  it('turn off async stack traces (issue 13: an Error per request and publish ack cost ~10% of a node)', () => {
    const opts = natsOptions(parseConfig({ SWITCHBOARD_NATS_URL: 'nats://127.0.0.1:4999', SWITCHBOARD_NODE_ID: 'n1', SWITCHBOARD_JWT_SECRET: 'x'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) }));
    expect(opts.noAsyncTraces).toBe(true);
    expect(opts.name).toBe('switchboard-n1');
  });

  it('name a second connection of the node by its role', async () => {
    const { log } = { log: createLogger('silent') };
    const connect = vi.fn().mockResolvedValue({ fake: true });
    const config = parseConfig({ SWITCHBOARD_NATS_URL: 'nats://127.0.0.1:4999', SWITCHBOARD_NODE_ID: 'n1', SWITCHBOARD_JWT_SECRET: 'x'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) });
    await connectNats(config, { log, clock: new ManualClock(), connect, role: 'control' });
    expect(connect.mock.calls[0][0]).toMatchObject({ name: 'switchboard-n1-control', noAsyncTraces: true });
  });
});
