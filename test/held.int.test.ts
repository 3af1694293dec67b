import { afterAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { enc, msgId, Peer, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Issue 8 parts 1-2 on real processes and real WebSockets (PROTOCOL.md v1.1 sections 2 and 4): held messages survive
 * kill -9; a burst of 1,000 to one PC that acks each is delivered once without a 4429 close; the same 1,000 left
 * unsettled survive kill -9 and come back through the flow-control window.
 */

const started: NodeProcess[] = [];
const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) p.close();
  for (const n of started) await n.stop();
  const dirs = new Set(started.map((n) => n.dataDir));
  for (const n of started) if (dirs.delete(n.dataDir)) await n.removeData();
});

async function start(opts: Parameters<typeof NodeProcess.start>[0] = {}): Promise<NodeProcess> {
  const n = await NodeProcess.start(opts);
  started.push(n);
  return n;
}
async function pc(node: NodeProcess, user: string, autoAck = true): Promise<Peer> {
  const p = await Peer.open(node, { sub: user, dev: 'laptop', kind: 'pc' }, { autoAck });
  peers.push(p);
  p.send({ type: 'presence', state: 'active' });
  return p;
}
const restartOf = (n: NodeProcess, env: Record<string, string> = {}) => start({ dataDir: n.dataDir, apiKey: n.apiKey, jwtSecret: n.jwtSecret, env });
const closes = (p: Peer) => p.client.closed.then((c) => c.code);

describe('held messages across kill -9', () => {
  it('held while nobody is reachable, kept across kill -9 + restart, delivered in accept order to the first session', async () => {
    const node = await start();
    const user = uniqueUser('held');
    const ids = Array.from({ length: 20 }, (_, i) => msgId(`h${i}`));
    for (const id of ids) expect((await node.send({ id, to: user, text: id })).status).toBe(202);
    await viewUntil(node, user, (v) => v.held === 20, '20 held');
    const d = await node.http('GET', `/v1/users/${enc(user)}/decisions?limit=1`);
    expect(d.body.decisions[0]).toMatchObject({ route: 'held', reason: 'no_pc', targets: [] });
    expect((await node.kill('SIGKILL')).signal).toBe('SIGKILL');

    const after = await restartOf(node, { SWITCHBOARD_REPLAY_GRACE_MS: '0' });
    expect((await userView(after, user)).held).toBe(20);
    const laptop = await pc(after, user);
    // At least 20, then exactly these: a message sent twice fails here with the list, not as a timeout.
    await until(() => laptop.received.length >= 20, 10_000, 'held messages replayed');
    expect(laptop.received).toEqual(ids);
    await viewUntil(after, user, (v) => v.held === 0, 'held drained');
    expect(laptop.received).toEqual(ids); // and none came twice once they were no longer held
  }, 60_000);
});

describe('a new message sent right after the session opens', () => {
  it('arrives after the held backlog, not ahead of it (section 4: held messages are routed in accept order)', async () => {
    const node = await start();
    const user = uniqueUser('behind');
    const ids = Array.from({ length: 500 }, (_, i) => msgId(`h${i}`));
    const batch = await node.http('POST', '/v1/messages/batch', { messages: ids.map((id) => ({ id, to: user, text: id })) });
    expect(batch.body.results.map((r: { status: string }) => r.status)).toEqual(ids.map(() => 'accepted'));
    await viewUntil(node, user, (v) => v.held === 500, '500 held');
    // The replay reads the 500 from disk; a message sent as soon as the welcome came is accepted meanwhile.
    const laptop = await pc(node, user);
    const late = msgId('late');
    expect((await node.send({ id: late, to: user, text: late })).status).toBe(202);
    await until(() => laptop.received.length >= 501, 10_000, 'the backlog and the new message');
    expect(laptop.received.indexOf(late)).toBe(500);
    expect(laptop.received).toEqual([...ids, late]);
    await viewUntil(node, user, (v) => v.held === 0, 'held drained');
  }, 60_000);
});

describe('read, then kill -9', () => {
  it('messages read while held are not delivered after the restart (their inbox settle was lost to the kill)', async () => {
    const node = await start();
    const user = uniqueUser('readkill');
    const ids = Array.from({ length: 30 }, (_, i) => msgId(`r${i}`));
    for (const id of ids) expect((await node.send({ id, to: user, text: id })).status).toBe(202);
    expect((await node.http('POST', `/v1/users/${enc(user)}/read`, { ids })).body).toMatchObject({ read: 30, unread: 0 });
    await node.kill('SIGKILL'); // within the settle's lazy write: the inbox still has them unsettled

    const after = await restartOf(node, { SWITCHBOARD_REPLAY_GRACE_MS: '0' });
    const laptop = await pc(after, user);
    const late = msgId('late');
    expect((await after.send({ id: late, to: user, text: late })).status).toBe(202);
    await until(() => laptop.received.includes(late), 10_000, 'a message sent after the restart');
    expect(laptop.received).toEqual([late]);
    expect((await userView(after, user)).held).toBe(0);
  }, 60_000);
});

describe('flow control: the burst', () => {
  const N = 1000;

  it('1,000 concurrent POSTs to one connected PC that acks each: all delivered once, no close', async () => {
    const node = await start({ env: { SWITCHBOARD_FRAME_RATE: '200' } });
    const user = uniqueUser('burst');
    const laptop = await pc(node, user);
    const closed = closes(laptop);
    const ids = Array.from({ length: N }, (_, i) => msgId(`b${i}`));
    const answers = await Promise.all(ids.map((id) => node.send({ id, to: user, text: 'x' })));
    expect(answers.filter((a) => a.status === 202)).toHaveLength(N);
    await until(() => new Set(laptop.received).size === N, 30_000, 'all delivered');
    expect(laptop.received).toHaveLength(N);
    expect(await Promise.race([closed, new Promise((r) => setTimeout(() => r('open'), 200))])).toBe('open');
  }, 60_000);

  it('the same 1,000 left unsettled, kill -9, restart: all delivered once through the window, no close', async () => {
    const env = { SWITCHBOARD_ACK_TIMEOUT_MS: '600000', SWITCHBOARD_FRAME_RATE: '200' };
    const node = await start({ env });
    const user = uniqueUser('backlog');
    const before = await pc(node, user, false);
    const ids = Array.from({ length: N }, (_, i) => msgId(`u${i}`));
    const answers = await Promise.all(ids.map((id) => node.send({ id, to: user, text: 'x' })));
    expect(answers.filter((a) => a.status === 202)).toHaveLength(N);
    // The window lets SWITCHBOARD_MAX_INFLIGHT (256) out; the rest wait in order.
    await until(() => before.received.length === 256, 10_000, 'window full');
    expect(before.received).toEqual(ids.slice(0, 256));
    await node.kill('SIGKILL');

    const after = await restartOf(node, { ...env, SWITCHBOARD_REPLAY_GRACE_MS: '3000' });
    const laptop = await pc(after, user);
    const closed = closes(laptop);
    await until(() => new Set(laptop.received).size === N, 30_000, 'all replayed');
    expect(laptop.received).toHaveLength(N);
    expect(new Set(laptop.received)).toEqual(new Set(ids));
    expect(await Promise.race([closed, new Promise((r) => setTimeout(() => r('open'), 200))])).toBe('open');
  }, 90_000);
});
