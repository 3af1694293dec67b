import { afterEach, describe, expect, it } from 'vitest';
import { harness, settle, until } from './support/actors-fakes.js';

/**
 * Section 2: "a second connection of the same user and device replaces the first" means the newest connection
 * wins, also when the owner hears of an older one last: a gateway that was frozen (SIGSTOP) or cut off from NATS
 * resends, when it wakes, a session its client left long ago for a new one on another gateway.
 */
type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

const closes = (h: H) => h.gateway.filter((g) => g.msg.type === 'close_session').map((g) => `${g.node}:${(g.msg as { sessionId: string }).sessionId}`);

describe('two sessions of one device: the newer connection stays', () => {
  it('a stale phone session resent after a newer one opened is closed 4409, and deliveries go to the newer one', async () => {
    h = harness();
    const t = Date.now();
    h.send({ type: 'session_open', user: 'u', device: 'phone', kind: 'mobile', os: 'ios', session: { node: 'gw2', id: 'new' }, at: t, openedAt: t });
    // The frozen gateway wakes and resends the session it still holds, opened 10 s earlier.
    h.send({ type: 'session_open', user: 'u', device: 'phone', kind: 'mobile', os: 'ios', session: { node: 'gw1', id: 'old' }, at: t - 9000, openedAt: t - 10_000 });
    await until(() => closes(h).length === 1);
    expect(closes(h)).toEqual(['gw1:old']);
    expect(h.gateway.find((g) => g.msg.type === 'close_session')!.msg).toMatchObject({ code: 4409 });
    h.route('u', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:new']);
  });

  it('a stale PC session does not replace the newer one either; a newer one still replaces an older one', async () => {
    h = harness();
    const t = Date.now();
    h.send({ type: 'session_open', user: 'u', device: 'pc', kind: 'pc', session: { node: 'gw1', id: 'a' }, at: t - 5000, openedAt: t - 5000 });
    h.send({ type: 'session_open', user: 'u', device: 'pc', kind: 'pc', session: { node: 'gw2', id: 'b' }, at: t, openedAt: t });
    await until(() => closes(h).length === 1);
    expect(closes(h)).toEqual(['gw1:a']); // the ordinary replacement
    h.send({ type: 'session_open', user: 'u', device: 'pc', kind: 'pc', session: { node: 'gw1', id: 'a' }, at: t - 4000, openedAt: t - 5000 });
    await until(() => closes(h).length === 2);
    expect(closes(h)).toEqual(['gw1:a', 'gw1:a']); // the stale resend is refused, b is not closed
    h.send({ type: 'presence', user: 'u', device: 'pc', sessionId: 'b', state: 'active', at: Date.now() });
    h.route('u', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:b']);
    await settle(h);
  });
});
