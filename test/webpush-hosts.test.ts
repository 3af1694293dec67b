import { isIP } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ipFamily } from '../protocol/push-endpoint.js';
import { parseConfig } from '../runtime/config.js';
import { WebPushSender } from '../senders/webpush.js';
import { allowedHostProblem, DEFAULT_WEBPUSH_HOSTS, isAllowedPushEndpoint, isPublicAddress } from '../senders/webpush-hosts.js';
import type { PushJob } from '../senders/types.js';
import { startWebPushServer, type WebPushServer } from './vendors/webpush-server.js';

/** PROTOCOL.md section 5: Web Push only to the allowed push service hosts, never a loopback or private address. */

const job = (token: string): PushJob => ({ jobId: 'm1:d1', user: 'u1', device: 'd1', vendor: 'webpush', token, message: { id: 'm1', to: 'u1', text: 'hi', acceptedAt: 0 } });
/** The same subscription with its endpoint moved to `origin`. */
const moved = (token: string, origin: string): string => {
  const sub = JSON.parse(token) as { endpoint: string };
  return JSON.stringify({ ...sub, endpoint: origin + new URL(sub.endpoint).pathname });
};

describe('isAllowedPushEndpoint (pure; the edge reuses it at registration)', () => {
  const D = DEFAULT_WEBPUSH_HOSTS;
  it.each([
    ['https://fcm.googleapis.com/fcm/send/abc', true],
    ['https://FCM.googleapis.com./wp/abc', true],
    ['https://updates.push.services.mozilla.com/wpush/v2/abc', true],
    ['https://web.push.apple.com/QG9x', true],
    ['https://db5p.notify.windows.com/w/?token=abc', true],
    ['https://notify.windows.com/w/', false], // "*." means subdomains only
    ['https://evilnotify.windows.com/w/', false],
    ['https://fcm.googleapis.com.evil.example/x', false],
    ['http://fcm.googleapis.com/fcm/send/abc', false],
    ['https://user:pw@fcm.googleapis.com/fcm/send/abc', false],
    ['https://127.0.0.1/push', false],
    ['https://[::1]/push', false],
    ['https://10.0.0.7/push', false],
    ['https://169.254.169.254/latest/meta-data', false],
    ['https://localhost/push', false],
    ['not a url', false],
  ])('default list: %s -> %s', (url, ok) => {
    expect(isAllowedPushEndpoint(url, D)).toBe(ok);
  });

  it('replaces the list as given: an address is allowed only when listed itself', () => {
    expect(isAllowedPushEndpoint('https://127.0.0.1:8443/push/x', ['127.0.0.1'])).toBe(true);
    expect(isAllowedPushEndpoint('https://[::1]:8443/push/x', ['0:0:0:0:0:0:0:1'])).toBe(true);
    expect(isAllowedPushEndpoint('https://fcm.googleapis.com/fcm/send/abc', ['127.0.0.1'])).toBe(false);
    expect(isAllowedPushEndpoint('https://a.b.push.example/x', ['*.push.example'])).toBe(true);
    expect(isAllowedPushEndpoint('https://0x7f.1/x', ['127.0.0.1'])).toBe(true); // URL spells it 127.0.0.1
  });

  it('tells public from loopback, private, link-local, reserved and mapped addresses', () => {
    for (const a of ['8.8.8.8', '142.250.74.42', '2a00:1450:4001:80b::200a']) expect(isPublicAddress(a)).toBe(true);
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.1', '169.254.169.254', '0.0.0.0', '224.0.0.1',
      '::1', '::', 'fe80::1', 'fc00::1', 'fd12::1', '::ffff:127.0.0.1', '::ffff:7f00:1', 'localhost', 'not an ip']) {
      expect(isPublicAddress(a), a).toBe(false);
    }
  });

  it('tells IP addresses from names as net.isIP does, without Node (it runs on the wire floor)', () => {
    for (const h of ['127.0.0.1', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '::1', '2a00:1450::200a', '::ffff:127.0.0.1', 'fe80::1', 'a::b::c', 'localhost', 'cafe', 'dead:beef', '1.2.3.4.5']) {
      expect(ipFamily(h), h).toBe(isIP(h));
    }
  });

  it('validates list entries', () => {
    for (const e of ['fcm.googleapis.com', '*.notify.windows.com', '127.0.0.1', '::1', '[::1]']) expect(allowedHostProblem(e)).toBeUndefined();
    for (const e of ['https://fcm.googleapis.com', '*', '*.', 'a..b', 'host/path', 'bad_host']) expect(allowedHostProblem(e)).toBeDefined();
  });
});

describe('SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS', () => {
  it('defaults to the four push services and replaces them as given', () => {
    expect(parseConfig({}).webpush.allowedHosts).toEqual(DEFAULT_WEBPUSH_HOSTS);
    expect(parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: ' push.example.com, *.push.example ,127.0.0.1' }).webpush.allowedHosts)
      .toEqual(['push.example.com', '*.push.example', '127.0.0.1']);
  });

  it('refuses a bad entry naming the variable', () => {
    expect(() => parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: 'https://push.example.com' }))
      .toThrow(/^SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS must be a comma list of host names, \*\.-prefixed host names or IP addresses/);
    expect(() => parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: ',' })).toThrow(/SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS must be/);
  });
});

describe('WebPushSender sends only to allowed hosts', () => {
  let server: WebPushServer | undefined;
  let sender: WebPushSender | undefined;
  afterEach(async () => {
    await sender?.close();
    await server?.close();
    sender = server = undefined;
  });

  it('refuses, without any request, an endpoint on loopback under the default list (the old sender posted to it)', async () => {
    server = await startWebPushServer();
    sender = new WebPushSender(server.creds, { ca: server.ca });
    expect(await sender.send(job(server.subscribe()))).toEqual({
      outcome: 'failed', reason: 'webpush endpoint refused: 127.0.0.1 is not an allowed push service host (SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS)',
    });
    expect(server.requests).toHaveLength(0);
  });

  it('refuses a listed host name that resolves to a loopback address (checked at connect time), and sends to a listed address', async () => {
    server = await startWebPushServer();
    sender = new WebPushSender(server.creds, { ca: server.ca, allowedHosts: ['localhost', '127.0.0.1'] });
    const token = server.subscribe();
    const viaName = moved(token, server.origin.replace('127.0.0.1', 'localhost'));
    expect(await sender.send(job(viaName))).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/^webpush endpoint refused: localhost resolves to (127\.0\.0\.1|::1)/) });
    expect(server.requests).toHaveLength(0);
    expect(await sender.send(job(token))).toMatchObject({ outcome: 'ok' });
    expect(server.received).toHaveLength(1);
  });
});
