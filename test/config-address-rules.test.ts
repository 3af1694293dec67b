import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../runtime/config.js';
import { isHostOrAddress, natsServerProblem } from '../runtime/address-rules.js';
import { withoutCredentials } from '../runtime/nats-connect.js';
import { configError } from './support/config-error.js';

/**
 * PROTOCOL.md section 1 for addresses: SWITCHBOARD_HOST and each SWITCHBOARD_NATS_URL entry are refused at start
 * (ConfigError, exit 2) when they cannot be a host or a NATS server, instead of failing later in getaddrinfo or in
 * start-up's NATS retries.
 */

const SECRETS = { SWITCHBOARD_JWT_SECRET: 'j'.repeat(32), SWITCHBOARD_API_KEY: 'k'.repeat(32) };


describe('isHostOrAddress (SWITCHBOARD_HOST)', () => {
  it.each(['127.0.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', '[::1]', 'fe80::1', '::ffff:127.0.0.1', 'localhost', 'node-1.example.com',
    'example.com.', 'a', 'x1', '1x', '123abc.example', `${'a'.repeat(63)}.com`, 'h_ost', 'switchboard_nats_1', '_svc.example'])('accepts %j', (host) => {
    expect(isHostOrAddress(host)).toBe(true);
  });

  it.each([
    '999.1.1.1', '256.0.0.1', '1.2.3', '10.1', '1.2.3.4.5', '01.2.3.4', '12345', // all-numeric: an IPv4 address or nothing
    'bad host', 'a/b', '-lead.example', 'trail-.example', 'a..b', '.', '', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}aa`,
    '[localhost]', '[1.2.3.4]', '[::1', 'ünïcode.example', 'host:80',
  ])('refuses %j', (host) => {
    expect(isHostOrAddress(host)).toBe(false);
  });

  it('parseConfig refuses SWITCHBOARD_HOST=999.1.1.1 naming the variable (it used to fail in getaddrinfo, exit 1)', () => {
    const e = configError({ SWITCHBOARD_HOST: '999.1.1.1' });
    expect(e.variable).toBe('SWITCHBOARD_HOST');
    expect(e.message).toBe('SWITCHBOARD_HOST must be a host name or IP address');
  });
});

describe('natsServerProblem (SWITCHBOARD_NATS_URL entries)', () => {
  // What @nats-io/transport-node 3.x connects to (nats-core servers.ts hostPort; transport-node connect.ts).
  const good = [
    'notaurl', 'nats', 'nats:4222', 'localhost', '127.0.0.1', '127.0.0.1:4222', 'nats.example.com:4222', 'nats://nats.example.com:4222',
    'tls://nats.example.com:4443', 'NATS://Host.Example:4222', 'nats://127.0.0.1:4222/', 'nats://alice:pw@127.0.0.1:4222', 'nats://token@nats:4222', 'nats://u:p@nats:4222',
    'nats://[::1]:4222', '[::1]:4222', '::1', 'nats://::1', 'tls://::1', 'nats://h:1', 'nats://h:65535', 'nats://my_nats:4222',
    'nats://switchboard_nats_1:4222',
  ];
  it.each(good)('accepts %j', (entry) => {
    expect(natsServerProblem(entry)).toBeUndefined();
  });

  const bad: [entry: string, why: RegExp][] = [
    ['ws://nats:8080', /WebSocket/],
    ['wss://nats:443', /WebSocket/],
    ['http://nats:4222', /not a NATS scheme/],
    ['https://nats', /not a NATS scheme/],
    ['foo://nats', /not a NATS scheme/],
    ['999.1.1.1', /host/],
    ['nats://999.1.1.1:4222', /host/],
    ['nats://', /host/],
    ['nats://:4222', /host/],
    ['host:port', /host:port/],
    ['host:99999', /host:port|1-65535/],
    ['nats://h:65536', /1-65535/],
    ['nats://h:0', /1-65535/],
    ['h:4222:5', /host:port/],
    ['h:', /host:port/],
    ['a b', /space/],
    ['nats://h:4222/path', /path/],
    ['nats://h:4222?x=1', /query/],
    ['nats://[fe80::1%eth0]:4222', /host/],
    ['nats://u:p@ss@h:4222', /host/], // an `@` in credentials is percent-encoded: the first one ends them
  ];
  it.each(bad)('refuses %j', (entry, why) => {
    expect(natsServerProblem(entry)).toMatch(why);
  });

  it('parseConfig refuses a bad entry anywhere in the list, naming SWITCHBOARD_NATS_URL, the entry by place and why', () => {
    const prefix = 'SWITCHBOARD_NATS_URL must be a comma-separated list of NATS URLs (nats://host:port);';
    for (const [url, why] of [
      ['nats://a:4222,nats://b:99999', 'entry 2: the port is not 1-65535'],
      ['nats://999.1.1.1:4222', 'the host is not a host name or IP address'],
      ['nats://a:4222, host:port', 'entry 2: not host:port'],
      ['nats://user:s3cret@a:4222,nats://user:s3cret@b:0', 'entry 2: the port is not 1-65535'],
    ]) {
      const e = configError({ ...SECRETS, SWITCHBOARD_NATS_URL: url });
      expect(e.variable).toBe('SWITCHBOARD_NATS_URL');
      expect(e.message).toBe(`${prefix} ${why}`);
      expect(e.message).not.toContain('s3cret'); // the entry is named by place: it may carry credentials
    }
  });

  it('says why a WebSocket URL is refused, where the value alone does not', () => {
    expect(configError({ ...SECRETS, SWITCHBOARD_NATS_URL: 'ws://nats:8080' }).message).toBe(
      'SWITCHBOARD_NATS_URL must be a comma-separated list of NATS URLs (nats://host:port); ws:// and wss:// are WebSocket URLs, which the Node NATS client does not connect to',
    );
  });

  it('takes a well-formed host that does not resolve (yet): only syntax is checked, NATS may come up later', () => {
    expect(parseConfig({ ...SECRETS, SWITCHBOARD_NATS_URL: 'notaurl,nats://nats-0.nats:4222' }).natsServers).toEqual(['notaurl', 'nats://nats-0.nats:4222']);
  });

  /**
   * The rule against the library: an entry refused here is one nats.js refuses before any network I/O (a TypeError
   * from URL parsing or InvalidArgumentError), and an accepted one gets as far as connecting, as the node hands it
   * over (credentials taken out: `natsOptions`). Addresses only (no DNS); port 1 on loopback refuses at once.
   */
  describe('agrees with @nats-io/transport-node', () => {
    const attempt = async (entry: string): Promise<'parse' | 'network'> => {
      try {
        const nc = await connect({ servers: [withoutCredentials(entry)], reconnect: false, timeout: 1000 });
        await nc.close();
        return 'network';
      } catch (e) {
        return e instanceof TypeError || (e as Error).name === 'InvalidArgumentError' ? 'parse' : 'network';
      }
    };
    it.each(['999.1.1.1', 'nats://127.0.0.1:99999', 'ws://127.0.0.1:1', 'host:port', 'h:1:2', 'nats://[fe80::1%eth0]:1'])(
      'nats.js cannot use %j, and neither does the config', async (entry) => {
        expect(natsServerProblem(entry)).toBeDefined();
        expect(await attempt(entry)).toBe('parse');
      },
    );
    it.each(['127.0.0.1:1', 'nats://127.0.0.1:1', 'tls://127.0.0.1:1', 'nats://u:p@127.0.0.1:1', 'nats://u:p@localhost:1', '[::1]:1', 'nats://localhost:1', 'nats://::1', 'nats://my_nats_1:1'])(
      'nats.js parses %j, and so does the config', async (entry) => {
        expect(natsServerProblem(entry)).toBeUndefined();
        expect(await attempt(entry)).toBe('network');
      },
    );
  });
});
