import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_TOKEN_MAX_AGE_DAYS, parseConfig } from '../runtime/config.js';
import { registrationRules } from '../runtime/token-removals.js';
import { DEFAULT_WEBPUSH_HOSTS, isAllowedPushEndpoint } from '../senders/webpush-hosts.js';

/** Issue 9 configuration: SWITCHBOARD_TOKEN_MAX_AGE_DAYS, SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS, and the gateway's slice of it. */

describe('token configuration', () => {
  it('SWITCHBOARD_TOKEN_MAX_AGE_DAYS defaults to 270 (FCM\'s expiry) and must be 1-3650', () => {
    expect(DEFAULT_TOKEN_MAX_AGE_DAYS).toBe(270);
    expect(parseConfig({}).tokenMaxAgeDays).toBe(270);
    expect(parseConfig({ SWITCHBOARD_TOKEN_MAX_AGE_DAYS: '30' }).tokenMaxAgeDays).toBe(30);
    for (const bad of ['0', '-1', '1.5', 'soon', '4000']) {
      expect(() => parseConfig({ SWITCHBOARD_TOKEN_MAX_AGE_DAYS: bad })).toThrow(ConfigError);
    }
  });

  it('SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS replaces the default list, as given', () => {
    expect(parseConfig({}).webpush.allowedHosts).toEqual(DEFAULT_WEBPUSH_HOSTS);
    expect(parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: 'push.example.com, *.Push.Example.org' }).webpush.allowedHosts).toEqual(['push.example.com', '*.push.example.org']);
    expect(() => parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: 'https://push.example.com' })).toThrow(/SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS/);
  });

  it('the gateway gets the configured app names and the allowed hosts only', () => {
    const rules = registrationRules(parseConfig({ SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: 'push.example.com' }), { apps: { default: {}, beta: {} } });
    expect([...rules.apps]).toEqual(['default', 'beta']);
    expect(rules.isAllowedPushEndpoint(new URL('https://push.example.com/x'))).toBe(true);
    expect(rules.isAllowedPushEndpoint(new URL('https://fcm.googleapis.com/x'))).toBe(false);
  });
});

describe('isAllowedPushEndpoint (section 5)', () => {
  it.each([
    'https://fcm.googleapis.com/fcm/send/abc',
    'https://updates.push.services.mozilla.com/wpush/v2/abc',
    'https://web.push.apple.com/QGuQyavXutnMH',
    'https://wns2-par02p.notify.windows.com/w/?token=abc',
  ])('allows %s by default', (url) => {
    expect(isAllowedPushEndpoint(url)).toBe(true);
  });

  it.each([
    'http://fcm.googleapis.com/fcm/send/abc',
    'https://127.0.0.1/push',
    'https://[::1]/push',
    'https://localhost/push',
    'https://10.1.2.3/push',
    'https://169.254.169.254/latest/meta-data',
    'https://fcm.googleapis.com.evil.example/x',
    'https://evilfcm.googleapis.com/x',
    'https://push.apple.com/x',
    'https://user:pw@fcm.googleapis.com/x',
    'not a url',
  ])('refuses %s by default', (url) => {
    expect(isAllowedPushEndpoint(url)).toBe(false);
  });

  it('matches an IP literal only when a configured list names it exactly', () => {
    expect(isAllowedPushEndpoint('https://127.0.0.1:8443/push', ['127.0.0.1'])).toBe(true);
    expect(isAllowedPushEndpoint('https://127.0.0.2/push', ['127.0.0.1'])).toBe(false);
    expect(DEFAULT_WEBPUSH_HOSTS.every((h) => !/^[\d.]+$/.test(h) && h !== 'localhost')).toBe(true);
  });
});
