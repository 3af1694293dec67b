import { describe, expect, it } from 'vitest';
import { dispatchFrame, type SessionContext } from '../gateway/handlers/index.js';
import type { ClientFrame, OwnerMessage, ServerFrame, SwitchboardError } from '../protocol/index.js';
import type { DeviceRegistry } from '../store/types.js';

function fakeContext(kind: 'pc' | 'mobile', registry: Partial<DeviceRegistry> = {}) {
  const published: OwnerMessage[] = [];
  const sent: ServerFrame[] = [];
  const rejected: SwitchboardError[] = [];
  const closed: { code: number; reason: string }[] = [];
  const puts: unknown[] = [];
  const ctx: SessionContext = {
    user: 'u1', device: 'd1', kind, ...(kind === 'mobile' ? { os: 'android' as const } : {}), sessionId: 's1',
    registry: {
      put: async (user, device, reg) => { puts.push({ user, device, ...reg }); return { device, os: reg.os, token: reg.token, updatedAt: 7 }; },
      ...registry,
    } as DeviceRegistry,
    registration: { apps: new Set(['default', 'chat']), isAllowedPushEndpoint: (u) => u.hostname === 'fcm.googleapis.com' },
    now: () => 7,
    publish: (m) => published.push(m),
    send: (f) => sent.push(f),
    reject: (e) => rejected.push(e),
    close: (code, reason) => closed.push({ code, reason }),
  };
  return { ctx, published, sent, rejected, closed, puts };
}

const who = { user: 'u1', device: 'd1', sessionId: 's1', at: 7 };

describe('dispatchFrame (PROTOCOL.md section 2 frame table)', () => {
  it.each<[ClientFrame, OwnerMessage]>([
    [{ type: 'presence', state: 'active' }, { type: 'presence', ...who, state: 'active' }],
    [{ type: 'presence', state: 'inactive', reason: 'screen_locked' }, { type: 'presence', ...who, state: 'inactive', reason: 'screen_locked' }],
    [{ type: 'ack', id: 'm1' }, { type: 'ack', ...who, id: 'm1' }],
  ])('pc %j publishes to the owner', async (frame, expected) => {
    const t = fakeContext('pc');
    await dispatchFrame(t.ctx, frame);
    expect(t.published).toEqual([expected]);
    expect(t.rejected).toEqual([]);
  });

  it.each(['foreground', 'background'] as const)('mobile presence %s publishes', async (state) => {
    const t = fakeContext('mobile');
    await dispatchFrame(t.ctx, { type: 'presence', state });
    expect(t.published).toEqual([{ type: 'presence', ...who, state }]);
  });

  it.each<['pc' | 'mobile', ClientFrame]>([
    ['pc', { type: 'presence', state: 'foreground' }],
    ['pc', { type: 'presence', state: 'background' }],
    ['mobile', { type: 'presence', state: 'active' }],
    ['mobile', { type: 'presence', state: 'inactive', reason: 'idle' }],
    ['pc', { type: 'register', os: 'ios', token: 't' }],
  ])('%s %j is frame_not_allowed and publishes nothing', async (kind, frame) => {
    const t = fakeContext(kind);
    await dispatchFrame(t.ctx, frame);
    expect(t.rejected.map((e) => e.code)).toEqual(['frame_not_allowed']);
    expect(t.published).toEqual([]);
    expect(t.closed).toEqual([]);
  });

  it('ping refreshes the session and answers pong', async () => {
    const t = fakeContext('pc');
    await dispatchFrame(t.ctx, { type: 'ping' });
    expect(t.published).toEqual([{ type: 'touch', ...who }]);
    expect(t.sent).toEqual([{ type: 'pong' }]);
  });

  it('register stores the token, tells the owner, then answers registered', async () => {
    const t = fakeContext('mobile');
    await dispatchFrame(t.ctx, { type: 'register', os: 'android', token: 'tok', app: 'chat' });
    expect(t.puts).toEqual([{ user: 'u1', device: 'd1', os: 'android', token: 'tok', app: 'chat' }]);
    expect(t.published[0]).toEqual({ type: 'device_put', user: 'u1', device: 'd1', os: 'android', token: 'tok', app: 'chat' });
    expect(t.sent).toEqual([{ type: 'registered' }]);
  });

  it('register answers store_failed when the registry fails, and publishes nothing', async () => {
    const t = fakeContext('mobile', { put: async () => { throw new Error('disk full'); } });
    await dispatchFrame(t.ctx, { type: 'register', os: 'android', token: 'tok' });
    expect(t.rejected.map((e) => e.code)).toEqual(['store_failed']);
    expect(t.published).toEqual([]);
    expect(t.sent).toEqual([]);
  });

  it('register refuses an os other than the JWT\'s with invalid_field; the connection stays (issue 9)', async () => {
    const t = fakeContext('mobile');
    await dispatchFrame(t.ctx, { type: 'register', os: 'ios', token: 'a'.repeat(64) });
    expect(t.rejected.map((e) => [e.code, e.message])).toEqual([['invalid_field', expect.stringContaining('"android"')]]);
    expect(t.puts).toEqual([]);
    expect(t.closed).toEqual([]);
  });

  it('register refuses an app that is not configured with invalid_field (issue 9)', async () => {
    const t = fakeContext('mobile');
    await dispatchFrame(t.ctx, { type: 'register', os: 'android', token: 'tok', app: 'gamma' });
    expect(t.rejected.map((e) => [e.code, e.message])).toEqual([['invalid_field', expect.stringContaining('app')]]);
    expect(t.puts).toEqual([]);
  });

  it('unregister clears the device\'s token (reason unregistered), touches the session, answers unregistered', async () => {
    const cleared: unknown[] = [];
    const t = fakeContext('mobile', {
      list: async () => [{ device: 'other', os: 'android', token: 'x', updatedAt: 1 }, { device: 'd1', os: 'android', token: 'tok', updatedAt: 1 }],
      clearToken: async (...args) => { cleared.push(args); return true; },
    });
    await dispatchFrame(t.ctx, { type: 'unregister' });
    expect(cleared).toEqual([['u1', 'd1', 'tok', 'unregistered']]);
    expect(t.published).toEqual([{ type: 'touch', ...who }]);
    expect(t.sent).toEqual([{ type: 'unregistered' }]);
  });

  it('unregister of a device without a token is answered all the same; a PC may not send it', async () => {
    const t = fakeContext('mobile', { list: async () => [] });
    await dispatchFrame(t.ctx, { type: 'unregister' });
    expect(t.sent).toEqual([{ type: 'unregistered' }]);
    const pc = fakeContext('pc');
    await dispatchFrame(pc.ctx, { type: 'unregister' });
    expect(pc.rejected.map((e) => e.code)).toEqual(['frame_not_allowed']);
  });

  it('a second hello closes 4400', async () => {
    const t = fakeContext('pc');
    await dispatchFrame(t.ctx, { type: 'hello', token: 'x' });
    expect(t.closed).toEqual([{ code: 4400, reason: 'hello already received' }]);
  });
});
