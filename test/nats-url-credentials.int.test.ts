import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { systemClock } from '../base/clock.js';
import { ConfigError, parseConfig } from '../runtime/config.js';
import { connectNats, natsOptions, withoutCredentials } from '../runtime/nats-connect.js';
import { configError } from './support/config-error.js';
import { NatsServer } from './support/nats-server.js';

/**
 * SWITCHBOARD_NATS_URL with credentials in it (`nats://user:password@host`, `nats://token@host`): the NATS client
 * ignores them in a URL, so the node passes them as the client's options; real nats-servers that require them.
 */
const SECRETS = { SWITCHBOARD_JWT_SECRET: 'j'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) };
const config = (url: string, more: Record<string, string> = {}) => parseConfig({ ...SECRETS, SWITCHBOARD_NATS_URL: url, SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS: '3000', ...more });

describe('NATS credentials in SWITCHBOARD_NATS_URL', () => {
  const servers: NatsServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.dispose();
  });

  it('a user and password in the URL log in to a server that requires them (the client alone would not)', async () => {
    const server = await NatsServer.start({ args: ['--user', 'alice', '--pass', 's3cret/pass'] });
    servers.push(server);
    const c = config(`nats://alice:s3cret%2Fpass@127.0.0.1:${server.port}`);
    expect(natsOptions(c)).toMatchObject({ servers: [`nats://127.0.0.1:${server.port}`], user: 'alice', pass: 's3cret/pass' });
    const nc = await connectNats(c, { log: createLogger('silent'), clock: systemClock });
    try {
      expect(nc.info?.port).toBe(server.port);
    } finally {
      await nc.close();
    }
  });

  it('a token in the URL logs in to a server that requires it', async () => {
    const server = await NatsServer.start({ args: ['--auth', 'tok3n'] });
    servers.push(server);
    const c = config(`tok3n@127.0.0.1:${server.port}`);
    expect(natsOptions(c)).toMatchObject({ servers: [`127.0.0.1:${server.port}`], token: 'tok3n' });
    const nc = await connectNats(c, { log: createLogger('silent'), clock: systemClock });
    await nc.close();
  });

  it('one authentication method: URL credentials beside SWITCHBOARD_NATS_TOKEN, or different ones per URL, stop the start (exit 2)', () => {
    const both = configError({ ...SECRETS, SWITCHBOARD_NATS_URL: 'nats://a:b@n1:4222', SWITCHBOARD_NATS_TOKEN: 't' });
    expect(both.variable).toBe('SWITCHBOARD_NATS_TOKEN');
    expect(both.message).toContain('SWITCHBOARD_NATS_URL carries credentials');
    const differ = configError({ ...SECRETS, SWITCHBOARD_NATS_URL: 'nats://a:b@n1:4222,nats://a:c@n2:4222' });
    expect(differ).toBeInstanceOf(ConfigError);
    expect(differ.variable).toBe('SWITCHBOARD_NATS_URL');
    expect(differ.message).not.toContain('b@');
    // The same credentials on every URL, or on one of them only, are one method.
    expect(natsOptions(config('nats://a:b@n1:4222,n2:4222'))).toMatchObject({ servers: ['nats://n1:4222', 'n2:4222'], user: 'a', pass: 'b' });
  });

  it('never prints credentials of a URL, with or without a scheme', () => {
    expect(withoutCredentials('tls://u:p@nats.example:4222')).toBe('tls://nats.example:4222');
    expect(withoutCredentials('tok@nats.example:4222')).toBe('nats.example:4222');
    expect(withoutCredentials('nats.example:4222')).toBe('nats.example:4222');
  });
});
