import { describe, expect, it } from 'vitest';
import { decodeClientFrame, decodeDeviceRegistration, decodeSendRequest } from '../protocol/index.js';

const me = { user: 'alice', device: 'pc1' };

describe('client frames (PROTOCOL.md section 2)', () => {
  it.each([
    ['{"type":"hello","token":"x.y.z"}', { type: 'hello', token: 'x.y.z' }],
    ['{"type":"presence","state":"active"}', { type: 'presence', state: 'active' }],
    ['{"type":"presence","state":"inactive","reason":"screen_locked"}', { type: 'presence', state: 'inactive', reason: 'screen_locked' }],
    ['{"type":"presence","state":"background"}', { type: 'presence', state: 'background' }],
    ['{"type":"register","os":"android","token":"fcm-token"}', { type: 'register', os: 'android', token: 'fcm-token' }],
    [`{"type":"register","os":"ios","token":"${'ab'.repeat(32)}","app":"beta"}`, { type: 'register', os: 'ios', token: 'ab'.repeat(32), app: 'beta' }],
    ['{"type":"ack","id":"m-1"}', { type: 'ack', id: 'm-1' }],
    ['{"type":"ping","user":"alice"}', { type: 'ping' }],
  ])('decodes %s', (text, frame) => {
    expect(decodeClientFrame(text, me)).toEqual({ ok: true, value: frame });
  });

  it.each([
    ['{not json', 'bad_json'],
    ['[1,2]', 'invalid_request'],
    ['{"type":"teleport"}', 'unknown_frame'],
    ['{"type":7}', 'invalid_request'],
    ['{"type":"presence","state":"inactive"}', 'invalid_request'],
    ['{"type":"presence","state":"inactive","reason":"bored"}', 'invalid_request'],
    ['{"type":"register","os":"symbian","token":"t"}', 'invalid_field'], // section 3: no token fits an unknown OS
    ['{"type":"register","os":"ios","token":""}', 'invalid_field'], // section 3: a token that does not fit its OS
    ['{"type":"ack","id":""}', 'invalid_request'],
    [`{"type":"ack","id":"${'x'.repeat(129)}"}`, 'invalid_request'],
    ['{"type":"ack","id":"m","user":"mallory"}', 'forbidden'],
    ['{"type":"presence","state":"active","device":"other"}', 'forbidden'],
  ])('rejects %s with %s', (text, code) => {
    const r = decodeClientFrame(text, me);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe(code);
      expect(r.error.message.length).toBeGreaterThan(5);
    }
  });
});

describe('send requests (PROTOCOL.md section 3)', () => {
  it('accepts the full shape and stamps acceptedAt', () => {
    const body = { id: 'm1', to: 'u:1@x', from: 'bob', title: 'T', text: 'hi', data: { a: '1' }, collapseKey: 'c', priority: 'high', ttlSeconds: 60 };
    expect(decodeSendRequest(body, 42)).toEqual({ ok: true, value: { ...body, acceptedAt: 42 } });
  });

  it('counts id length in characters, not UTF-16 units', () => {
    expect(decodeSendRequest({ id: '😀'.repeat(128), to: 'u' }, 0).ok).toBe(true);
    expect(decodeSendRequest({ id: '😀'.repeat(129), to: 'u' }, 0).ok).toBe(false);
  });

  it.each([
    [{ to: 'u' }, 'id'],
    [{ id: 'm', to: '' }, 'to'],
    [{ id: 'm', to: 'u', data: { a: 1 } }, 'data.a'],
    [{ id: 'm', to: 'u', priority: 'urgent' }, 'priority'],
    [{ id: 'm', to: 'u', ttlSeconds: -1 }, 'ttlSeconds'],
    [{ id: 'm', to: 'u', ttlSeconds: 1.5 }, 'ttlSeconds'],
    [{ id: 'm\ud800', to: 'u' }, 'id'], // a lone surrogate (a message id may hold any character, section 3)
    [{ id: 'm', to: 'u\u0000' }, 'to'], // a user id is printable (section 2's claims)
    [{ id: 'm', to: 'u', title: 5 }, 'title'],
  ])('rejects %j naming %s', (body, field) => {
    const r = decodeSendRequest(body, 0);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('invalid_request');
      expect(r.error.message).toContain(field);
    }
  });

  it('validates device registrations', () => {
    const web = JSON.stringify({ endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { p256dh: 'BNcR', auth: 'tBHI' } });
    expect(decodeDeviceRegistration({ os: 'web', token: web })).toEqual({ ok: true, value: { os: 'web', token: web } });
    const r = decodeDeviceRegistration({ os: 'ios' });
    expect(r.ok === false && r.error.message).toContain('token');
  });

  it('keeps an APNs token in lower case: the same token in upper case is the same device token (one holder, section 3); others as given', () => {
    const hex = 'ab'.repeat(32);
    expect(decodeDeviceRegistration({ os: 'ios', token: hex.toUpperCase() })).toEqual({ ok: true, value: { os: 'ios', token: hex } });
    expect(decodeDeviceRegistration({ os: 'ios', token: 'aB'.repeat(32), app: 'work' })).toEqual({ ok: true, value: { os: 'ios', token: hex, app: 'work' } });
    expect(decodeDeviceRegistration({ os: 'android', token: 'AbC:x' })).toEqual({ ok: true, value: { os: 'android', token: 'AbC:x' } });
  });
});
