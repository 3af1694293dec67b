import { describe, expect, it } from 'vitest';
import { parseConfig } from '../runtime/config.js';
import { natsOptions } from '../runtime/nats-connect.js';

describe('NATS connection options', () => {
  it('turn off async stack traces (issue 13: an Error per request and publish ack cost ~10% of a node)', () => {
    const opts = natsOptions(parseConfig({ SWITCHBOARD_NATS_URL: 'nats://127.0.0.1:4999', SWITCHBOARD_NODE_ID: 'n1', SWITCHBOARD_JWT_SECRET: 'x'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) }));
    expect(opts.noAsyncTraces).toBe(true);
    expect(opts.name).toBe('switchboard-n1');
  });
});
