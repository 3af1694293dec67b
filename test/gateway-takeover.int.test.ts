import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../bus/subjects.js';
import type { OwnerMessage } from '../protocol/index.js';
import { JWT_SECRET, startGateway, type GatewayFixture } from './gateway-fixture.js';
import { TestClient, until, type Claims } from './support/ws-client.js';

/** What a gateway does for a cluster takeover (issue 4, part 5): resend sessions on request, drop fenced-out deliveries. */
describe('gateway on a partition takeover', () => {
  let g: GatewayFixture;
  const open: TestClient[] = [];
  beforeEach(async () => {
    g = await startGateway({ SWITCHBOARD_PARTITIONS: '8' });
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await g.gateway.close();
  });
  const session = async (claims: Claims) => {
    const c = await TestClient.session(g.wsUrl, JWT_SECRET, claims);
    open.push(c);
    return c;
  };
  const sessionId = (user: string, device: string) =>
    (g.owned.find((m) => m.type === 'session_open' && m.user === user && m.device === device) as Extract<OwnerMessage, { type: 'session_open' }>).session.id;

  it('resends the sessions of a partition, with their last presence, to its new owner', async () => {
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const p = partitionOf('alice', 8);
    const pc = await session({ sub: 'alice', dev: 'laptop', kind: 'pc' });
    await session({ sub: 'alice', dev: 'phone', kind: 'mobile', os: 'android' });
    for (const u of users.slice(1)) await session({ sub: u, dev: 'laptop', kind: 'pc' });
    pc.send({ type: 'presence', state: 'inactive', reason: 'screen_locked' });
    await until(() => g.owned.some((m) => m.type === 'presence'));
    g.owned.length = 0;

    const reply = await g.bus.request(g.subjects.resync, { type: 'resync', partition: p, partitions: 8 }, 1000);
    const inP = users.filter((u) => partitionOf(u, 8) === p);
    // The answer comes after the sessions were sent: the owner has them all before it starts routing.
    expect(reply).toEqual({ type: 'resynced', node: 'gw-test', sessions: inP.length + 1 });
    const opens = g.owned.filter((m) => m.type === 'session_open') as Extract<OwnerMessage, { type: 'session_open' }>[];
    expect(new Set(opens.map((m) => m.user))).toEqual(new Set(inP));
    expect(opens.find((m) => m.device === 'phone')).toMatchObject({ kind: 'mobile', os: 'android', session: { node: 'gw-test' } });
    expect(g.owned.filter((m) => m.type === 'presence')).toEqual([
      expect.objectContaining({ user: 'alice', device: 'laptop', state: 'inactive', reason: 'screen_locked', sessionId: sessionId('alice', 'laptop') }),
    ]);
  });

  it('after the bus reconnected, resends every session with its last presence to its owner', async () => {
    const pc = await session({ sub: 'alice', dev: 'laptop', kind: 'pc' });
    await session({ sub: 'bob', dev: 'phone', kind: 'mobile', os: 'ios' });
    pc.send({ type: 'presence', state: 'active' });
    await until(() => g.owned.some((m) => m.type === 'presence'));
    g.owned.length = 0;

    expect(g.gateway.resendSessions()).toBe(2);
    await until(() => g.owned.filter((m) => m.type === 'session_open').length === 2);
    const opens = g.owned.filter((m) => m.type === 'session_open') as Extract<OwnerMessage, { type: 'session_open' }>[];
    expect(opens.map((m) => `${m.user}/${m.device}`).sort()).toEqual(['alice/laptop', 'bob/phone']);
    expect(g.owned.filter((m) => m.type === 'presence')).toEqual([
      expect.objectContaining({ user: 'alice', device: 'laptop', state: 'active', sessionId: sessionId('alice', 'laptop') }),
    ]);
  });

  it('drops a delivery stamped with an older fence than one already seen for the partition', async () => {
    const pc = await session({ sub: 'alice', dev: 'laptop', kind: 'pc' });
    const sid = g.owned.find((m) => m.type === 'session_open')!;
    const id = (sid as Extract<OwnerMessage, { type: 'session_open' }>).session.id;
    const p = partitionOf('alice', 8);
    const deliver = (msgId: string, revision: number) =>
      g.bus.publish(g.subjects.gateway('gw-test'), { type: 'deliver', sessionId: id, user: 'alice', fence: { partition: p, revision }, frame: { type: 'message', id: msgId, ts: 1 } });
    deliver('from-new-owner', 20);
    await pc.message('from-new-owner');
    deliver('from-replaced-owner', 7);
    deliver('later-from-new-owner', 21);
    await pc.message('later-from-new-owner');
    expect(pc.hasMessage('from-replaced-owner')).toBe(false);
  });
});
