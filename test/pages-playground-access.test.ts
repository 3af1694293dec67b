import { describe, expect, it } from 'vitest';
import { DEFAULT_PLAYGROUND_MODE, isLoopbackAddress, isLoopbackHostHeader, isSameOrigin, playgroundEnabled, PLAYGROUND_USER } from '../gateway/playground-access.js';
import { ConfigError, parseConfig } from '../runtime/config.js';

describe('playground: when it is served (issue 12)', () => {
  it('auto serves it only on a loopback listener', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '127.255.0.9', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) {
      expect(playgroundEnabled('auto', host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '192.0.2.2', '10.0.0.1', 'fd00::2', 'example.org', '128.0.0.1', '::ffff:10.0.0.1']) {
      expect(playgroundEnabled('auto', host), host).toBe(false);
    }
  });

  it('on and off win over the listener', () => {
    expect(playgroundEnabled('on', '0.0.0.0')).toBe(true);
    expect(playgroundEnabled('off', '127.0.0.1')).toBe(false);
  });

  it('tells loopback remote addresses from others, as the socket reports them', () => {
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.1.2.3']) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of [undefined, '', '192.0.2.2', '::ffff:192.0.2.2', 'fd00::2', '::', '0.0.0.0', 'localhost', '127.0.0.1.evil']) {
      expect(isLoopbackAddress(a), String(a)).toBe(false);
    }
  });

  it('accepts a Host header only when it names this machine (no DNS rebinding)', () => {
    for (const h of ['localhost', 'localhost:7400', '127.0.0.1:7400', '[::1]:7400', '[::1]']) expect(isLoopbackHostHeader(h), h).toBe(true);
    for (const h of [undefined, '', 'evil.example:7400', '192.0.2.2:7400', 'localhost.evil.example', '127.0.0.1.nip.io']) {
      expect(isLoopbackHostHeader(h), String(h)).toBe(false);
    }
  });

  it("accepts an Origin only when it is the very origin the request went to (no other page, local or not, can make it send)", () => {
    const same: [string | undefined, string | undefined][] = [[undefined, 'localhost:7400'], [undefined, undefined], ['http://localhost:7400', 'localhost:7400'],
      ['http://127.0.0.1:7400', '127.0.0.1:7400'], ['http://[::1]:7400', '[::1]:7400'], ['http://localhost', 'localhost:80'], ['http://LOCALHOST:7400', 'localhost:7400']];
    for (const [o, h] of same) expect(isSameOrigin(o, h), `${o} on ${h}`).toBe(true);
    const other: [string, string | undefined][] = [['null', 'localhost:7400'], ['', 'localhost:7400'], ['https://evil.example', 'localhost:7400'],
      ['http://localhost:3000', 'localhost:7400'], ['http://127.0.0.2:7400', '127.0.0.1:7400'], ['http://127.0.0.1:7400', 'localhost:7400'],
      ['http://localhost:7400', undefined], ['file://', 'localhost:7400'], ['chrome-extension://abc', 'localhost:7400']];
    for (const [o, h] of other) expect(isSameOrigin(o, h), `${o} on ${h}`).toBe(false);
  });

  it('keeps its tokens and sends to playground users', () => {
    for (const u of ['playground', 'playground-1', 'playground-a.b_c']) expect(PLAYGROUND_USER.test(u), u).toBe(true);
    for (const u of ['alice', 'playground-', 'playgroundx', 'x-playground', 'playground-a/b']) expect(PLAYGROUND_USER.test(u), u).toBe(false);
  });
});

describe('SWITCHBOARD_PLAYGROUND', () => {
  it('defaults to auto', () => {
    expect(DEFAULT_PLAYGROUND_MODE).toBe('auto');
    expect(parseConfig({}).playground).toBe('auto');
  });

  it('takes on, off and auto', () => {
    for (const mode of ['on', 'off', 'auto'] as const) expect(parseConfig({ SWITCHBOARD_PLAYGROUND: mode }).playground).toBe(mode);
  });

  it('refuses anything else, naming the variable', () => {
    expect(() => parseConfig({ SWITCHBOARD_PLAYGROUND: 'yes' })).toThrow(ConfigError);
    expect(() => parseConfig({ SWITCHBOARD_PLAYGROUND: 'yes' })).toThrow('SWITCHBOARD_PLAYGROUND must be one of on, off, auto');
  });
});
