import { describe, expect, it } from 'vitest';
import { natsStatusLevel } from '../runtime/cluster-node.js';

describe('nats connection status log level', () => {
  it('warns on a lost or failing connection, keeps pings and reconnect attempts out of info, reconnects at info', () => {
    expect(['disconnect', 'error', 'staleConnection', 'slowConsumer', 'ldm'].map(natsStatusLevel)).toEqual(['warn', 'warn', 'warn', 'warn', 'warn']);
    expect(['ping', 'reconnecting', 'forceReconnect'].map(natsStatusLevel)).toEqual(['debug', 'debug', 'debug']);
    expect(['reconnect', 'update', 'close', 'something-new'].map(natsStatusLevel)).toEqual(['info', 'info', 'info', 'info']);
  });
});
