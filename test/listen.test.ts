import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenFailure, listenOn } from '../runtime/listen.js';
import { StartError } from '../runtime/start-error.js';

/**
 * PROTOCOL.md section 1: a listener that cannot open on the configured address is refused like a bad value (exit 2)
 * with one line naming SWITCHBOARD_HOST / SWITCHBOARD_PORT, not "failed to start: getaddrinfo ENOTFOUND …" (exit 1).
 */

const errno = (code: string) => Object.assign(new Error(`listen ${code}`), { code });

describe('listenFailure', () => {
  const cases: [code: string, names: RegExp][] = [
    ['ENOTFOUND', /^SWITCHBOARD_HOST nohost\.example does not resolve to an address \(ENOTFOUND\); set SWITCHBOARD_HOST/],
    ['EAI_AGAIN', /^SWITCHBOARD_HOST nohost\.example could not be resolved \(EAI_AGAIN/],
    ['EADDRNOTAVAIL', /^cannot listen on nohost\.example:7400: nohost\.example is not an address of this machine \(EADDRNOTAVAIL\); change SWITCHBOARD_HOST$/],
    ['EADDRINUSE', /^cannot listen on nohost\.example:7400: the port is in use \(EADDRINUSE\); change SWITCHBOARD_PORT \(or SWITCHBOARD_HOST\)/],
    ['EACCES', /^cannot listen on nohost\.example:7400: permission denied \(EACCES; ports below 1024 need privileges\); change SWITCHBOARD_PORT or SWITCHBOARD_HOST$/],
  ];
  it.each(cases)('%s -> a StartError (exit 2; EAI_AGAIN, which may pass, 1) naming the variable to change', (code, names) => {
    const cause = errno(code);
    const e = listenFailure(cause, 'nohost.example', 7400) as StartError;
    expect(e).toBeInstanceOf(StartError);
    expect(e.exitCode).toBe(code === 'EAI_AGAIN' ? 1 : 2);
    expect(e.message).toMatch(names);
    expect(e.message).not.toContain('\n');
    expect(e.cause).toBe(cause);
  });

  it('leaves any other error as it is (exit 1, "failed to start")', () => {
    const other = errno('EMFILE');
    expect(listenFailure(other, 'h', 1)).toBe(other);
    expect(listenFailure('weird', 'h', 1)).toBe('weird');
  });
});

describe('listenOn', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });
  /** The gateway's `listen`, on a plain TCP server. */
  const gateway = () => ({
    listen: (host: string, port: number) => new Promise<number>((resolve, reject) => {
      const s = createServer();
      servers.push(s);
      s.once('error', reject);
      s.listen(port, host, () => resolve((s.address() as { port: number }).port));
    }),
  });

  it('a port another process holds is refused naming SWITCHBOARD_PORT', async () => {
    const port = await gateway().listen('127.0.0.1', 0);
    const err = await listenOn(gateway(), '127.0.0.1', port).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).exitCode).toBe(2);
    expect((err as StartError).message).toBe(`cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE); change SWITCHBOARD_PORT (or SWITCHBOARD_HOST), or stop what holds it`);
  });

  it('an address that is not this machine\'s is refused naming SWITCHBOARD_HOST', async () => {
    // TEST-NET-1 (RFC 5737): never assigned to a local interface.
    const err = await listenOn(gateway(), '192.0.2.1', 0).catch((e: unknown) => e);
    expect((err as StartError).message).toMatch(/^cannot listen on 192\.0\.2\.1:0: .*\(EADDRNOTAVAIL\); change SWITCHBOARD_HOST$/);
  });

  it('takes an IPv6 address in brackets, as in a URL, and listens on the bare address', async () => {
    const seen: string[] = [];
    expect(await listenOn({ listen: async (host) => (seen.push(host), 4321) }, '[::1]', 0)).toBe(4321);
    expect(await listenOn({ listen: async (host) => (seen.push(host), 4321) }, '127.0.0.1', 0)).toBe(4321);
    expect(seen).toEqual(['::1', '127.0.0.1']);
  });
});
