import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { actorName, TURN_BUDGET } from '../actors/directory.js';
import { createLogger } from '../base/logger.js';
import { harness, settle, until } from './support/actors-fakes.js';

/** The directory: get-or-spawn, serialized mailboxes, passivation without losing a message, odd user ids, queries, many users, one ack timer. */

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => vi.useRealTimers());

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

describe('user directory', () => {
  it('loads the registry before the first message', async () => {
    h = harness();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.route('u1', 'm1'); // the very first message: it must already see the device
    await until(() => h.settled.length === 1);
    expect(h.pushes.jobs).toMatchObject([{ device: 'pixel', vendor: 'fcm' }]);
  });

  it('passivates an idle actor, keeps only the state of a user with live sessions', async () => {
    h = harness({ passivateAfterMs: 1000 });
    h.openPc('online', 'pc', 's1');
    h.route('gone', 'm1');
    await settle(h);
    expect(h.router.stats).toEqual({ liveActors: 2, residentUsers: 2 });
    await vi.advanceTimersByTimeAsync(1600);
    expect(h.router.stats).toEqual({ liveActors: 0, residentUsers: 1 });
    expect((await h.metrics.residentUsers.get()).values[0].value).toBe(1);
    // The kept state still routes: the PC session survived passivation.
    h.route('online', 'm2');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw1:s1']);
  });

  it('never passivates with an ack pending', async () => {
    h = harness({ passivateAfterMs: 100, ackTimeoutMs: 10_000 });
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await settle(h);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.router.stats.liveActors).toBe(1);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    await vi.advanceTimersByTimeAsync(200);
    expect(h.router.stats.liveActors).toBe(0);
  });

  it('a message sent right when the actor passivates is not lost (either order)', async () => {
    h = harness({ passivateAfterMs: 100 });
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    vi.setSystemTime(Date.now() + 1000);
    // Dispatched just before the sweep: in flight, so the sweep leaves the actor alone.
    h.route('u1', 'm1');
    h.router.sweep();
    expect(h.router.stats.liveActors).toBe(1);
    await until(() => h.deliveries().length === 1);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    // Dispatched just after the sweep stopped it: a fresh actor is spawned with the kept state.
    vi.setSystemTime(Date.now() + 1000);
    h.router.sweep();
    expect(h.router.stats).toEqual({ liveActors: 0, residentUsers: 1 });
    h.route('u1', 'm2');
    expect(h.router.stats.liveActors).toBe(1);
    await until(() => h.deliveries().length === 2);
    expect(h.deliveries()).toEqual(['gw1:s1', 'gw1:s1']);
  });

  it("user ids with ':' '@' '/' spaces and unicode get their own actor", async () => {
    h = harness();
    const users = ['a:b', 'x@example.com', 'team/alice', 'with space', '用户😀', 'A', 'a'];
    for (const [i, u] of users.entries()) h.openPc(u, 'pc', `s${i}`);
    for (const u of users) h.route(u, `m-${u}`);
    await until(() => h.deliveries().length === users.length);
    expect(new Set(h.deliveries()).size).toBe(users.length);
    for (const u of users) expect((await h.view(u)).user).toBe(u);
    expect(actorName('a:b/@ c')).toMatch(/^[a-z0-9\-$_.+!*'(),]+$/i);
  });

  it('a query is answered by the actor, and times out when the actor is stuck', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    expect(await h.view('u1')).toEqual({ user: 'u1', owner: 'n1', pc: { state: 'active', sessions: 1 }, devices: [], policy: { mobile: 'when_away' }, held: 0, unread: 0 });
    h.registry.hang = true; // a new user's registry load never finishes
    const reply = h.router.answer({ type: 'user_query', user: 'stuck' });
    await vi.advanceTimersByTimeAsync(2000);
    expect(await reply).toMatchObject({ type: 'error', code: 'unavailable' });
  });

  it('many users: each gets its own delivery, drain waits for every mailbox', async () => {
    h = harness({ passivateAfterMs: 1000 });
    const n = 2000;
    for (let i = 0; i < n; i++) h.openPc(`user-${i}`, 'pc', `s${i}`);
    for (let i = 0; i < n; i++) h.route(`user-${i}`, `m${i}`);
    await h.router.drain(10_000);
    expect(h.deliveries()).toHaveLength(n);
    for (let i = 0; i < n; i++) h.ack(`user-${i}`, 'pc', `s${i}`, `m${i}`);
    await h.router.drain(10_000);
    expect(h.settled).toHaveLength(n);
    expect(h.router.stats.liveActors).toBe(n);
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.router.stats).toEqual({ liveActors: 0, residentUsers: n });
  });

  it('runs one message at a time per user, in order, never inside the caller', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    h.route('u1', 'm3');
    // Dispatch is asynchronous: nothing ran within the calls above (the first message still awaits the registry).
    expect(h.deliveries()).toEqual([]);
    await until(() => h.deliveries().length === 3);
    const ids = h.gateway.filter((g) => g.msg.type === 'deliver').map((g) => (g.msg as { frame: { id: string } }).frame.id);
    expect(ids).toEqual(['m1', 'm2', 'm3']);
  });

  it('a user whose first message awaits a stuck registry holds its later messages, other users are not held', async () => {
    h = harness();
    h.registry.hang = true;
    h.route('stuck', 'm1');
    h.route('stuck', 'm2');
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    h.registry.hang = false;
    h.openPc('free', 'pc', 's1');
    h.route('free', 'm3');
    await until(() => h.deliveries().length === 1);
    expect(h.settled).toEqual([]);
    expect(h.router.stats.liveActors).toBe(2);
  });

  it('ack timeouts of many deliveries share one timer, and each still times out', async () => {
    h = harness({ ackTimeoutMs: 5000, passivateAfterMs: 3_600_000 });
    const n = 200;
    for (let i = 0; i < n; i++) h.openPc(`u${i}`, 'pc', `s${i}`);
    await settle(h);
    const timersBefore = vi.getTimerCount();
    for (let i = 0; i < n; i++) h.route(`u${i}`, `m${i}`);
    await until(() => h.deliveries().length === n);
    expect(vi.getTimerCount() - timersBefore).toBe(1);
    await vi.advanceTimersByTimeAsync(5000);
    await until(() => h.router.stats.liveActors === n && h.settled.length === n);
    expect((await h.metrics.ackTimeouts.get()).values).toMatchObject([{ labels: { kind: 'pc' }, value: n }]);
  });

  it('runs at most TURN_BUDGET messages per turn of the event loop (at least half of it), the rest in later turns, none lost', async () => {
    h = harness({ passivateAfterMs: 3_600_000 });
    const n = TURN_BUDGET * 2 + 10;
    for (let i = 0; i < n; i++) h.openPc(`u${i}`, 'pc', `s${i}`);
    await settle(h);
    for (let i = 0; i < n; i++) h.route(`u${i}`, `m${i}`);
    await new Promise((r) => setImmediate(r)); // one turn: timers and sockets would run here
    // The budget is refilled once half of it was spent: what the session messages left of it, then refills.
    expect(h.deliveries().length).toBeLessThanOrEqual(TURN_BUDGET);
    expect(h.deliveries().length).toBeGreaterThanOrEqual(TURN_BUDGET / 2);
    await until(() => h.deliveries().length === n);
    expect(new Set(h.deliveries()).size).toBe(n);
  });

  it('a mailbox deferred to a later turn keeps only the messages still waiting, not holes for those it took', async () => {
    h = harness({ passivateAfterMs: 3_600_000, maxInflight: 10_000 });
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    const n = TURN_BUDGET * 3 + 5;
    for (let i = 0; i < n; i++) h.route('u1', `m${i}`);
    await new Promise((r) => setImmediate(r));
    const taken = h.deliveries().length;
    expect(taken).toBeGreaterThan(0);
    expect(taken).toBeLessThan(n);
    const mailbox = (h.router as unknown as { live: Map<string, { queue?: unknown[]; head: number }> }).live.get('u1')!;
    expect(mailbox.head).toBe(0);
    expect(mailbox.queue).toHaveLength(n - taken);
    await until(() => h.deliveries().length === n);
    expect(mailbox.queue).toBeUndefined();
  });

  it('a message that throws, or whose handling rejects, is logged with its user and type; the mailbox goes on', async () => {
    const lines: { msg: string; user?: string; type?: string }[] = [];
    const settled: string[] = [];
    const log = createLogger('error', { write: (l: string) => void lines.push(JSON.parse(l)) } as unknown as NodeJS.WritableStream);
    h = harness({
      log, passivateAfterMs: 3_600_000,
      done: (id) => {
        if (id === 'boom') throw new Error('done failed');
        settled.push(id);
      },
    });
    h.openPc('u1', 'pc', 's1');
    h.openPc('u2', 'pc', 's2');
    await settle(h);
    // Synchronous throw: `done` of a message for a user with no session and no device (now or never: done at once).
    h.route('u3', 'boom', { ttlSeconds: 0 });
    h.route('u3', 'after-throw', { ttlSeconds: 0 });
    // A rejection: the read state cannot be saved.
    vi.spyOn(h.held, 'saveReads').mockRejectedValueOnce(new Error('disk full'));
    h.read('u2', ['x']);
    h.route('u2', 'after-reject');
    await until(() => settled.includes('after-throw') && h.deliveries().includes('gw1:s2'));
    await settle(h);
    // Two users' mailboxes, in either order (u3's new actor routes once its held count is known, section 4).
    expect(lines.filter((l) => l.msg === 'user actor failed on a message').map((l) => [l.user, l.type]).sort()).toEqual([['u2', 'read'], ['u3', 'route']]);
    expect(settled).toContain('after-throw');
    expect(h.router.stats.liveActors).toBe(3);
  });

  it("cancels the node's very first ack deadline too: a redelivery to the same device is not timed out early", async () => {
    // The first deadline a directory ever sets has handle 0; a truthiness check once left it live after its ack.
    h = harness({ ackTimeoutMs: 5000, passivateAfterMs: 3_600_000 });
    h.openPhone('u1', 'phone', 'ios', 's1');
    h.presence('u1', 'phone', 's1', 'foreground');
    await settle(h);
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    // One second later the phone reconnects: the unacked m1 goes to the new session, due 5 s from now.
    await vi.advanceTimersByTimeAsync(1000);
    h.openPhone('u1', 'phone', 'ios', 's2');
    h.presence('u1', 'phone', 's2', 'foreground');
    h.close('u1', 'phone', 's1');
    await until(() => h.deliveries().length === 2);
    const timeouts = async () => (await h.metrics.ackTimeouts.get()).values.reduce((n, v) => n + v.value, 0);
    expect(await timeouts()).toBe(1); // the closed session's delivery, counted at the close
    // Past the first delivery's due time, before the redelivery's: nothing may fire.
    await vi.advanceTimersByTimeAsync(4100);
    await settle(h);
    expect(await timeouts()).toBe(1);
    expect(h.deliveries()).toEqual(['gw2:s1', 'gw2:s2']);
    h.ack('u1', 'phone', 's2', 'm1');
    await until(() => h.settled.length === 1);
  });
});

describe('user directory: settled (a partition handed off finishes its deliveries first)', () => {
  it('resolves once the matching users\' deliveries are acked; one of another user is not waited for', async () => {
    h = harness();
    h.openPc('alice', 'laptop', 's1');
    h.openPc('bob', 'laptop', 's2');
    h.route('alice', 'a1');
    h.route('bob', 'b1');
    await until(() => h.deliveries().length === 2);
    let done: boolean | undefined;
    void h.router.settled((u) => u === 'alice', 5000).then((r) => (done = r));
    await vi.advanceTimersByTimeAsync(100);
    expect(done).toBeUndefined(); // a1 waits for its ack
    h.ack('alice', 'laptop', 's1', 'a1');
    await vi.advanceTimersByTimeAsync(50);
    expect(done).toBe(true);
    expect(h.settled).toEqual(['a1']); // bob's b1 is still out, and did not hold alice's partition up
  });

  it('gives up after its timeout with a delivery still unacked; with no matching user it resolves at once', async () => {
    h = harness({ ackTimeoutMs: 60_000 });
    h.openPc('alice', 'laptop', 's1');
    h.route('alice', 'a1');
    await until(() => h.deliveries().length === 1);
    let done: boolean | undefined;
    void h.router.settled((u) => u === 'alice', 1000).then((r) => (done = r));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBeUndefined();
    await vi.advanceTimersByTimeAsync(30);
    expect(done).toBe(false);
    expect(await h.router.settled((u) => u === 'nobody', 1000)).toBe(true);
  });
});
