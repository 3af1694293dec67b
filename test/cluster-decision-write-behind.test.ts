import { describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { DecisionHistory } from '../actors/decision-history.js';
import { DecisionWriteBehind, FIRST_SAVE_DELAY_MS, SAVE_CHUNK } from '../cluster/decision-write-behind.js';
import type { Decision } from '../protocol/index.js';
import { ManualClock } from './support/manual-clock.js';

/**
 * cluster/decision-write-behind.ts in virtual time: a user's first decision of a tenure is saved within
 * FIRST_SAVE_DELAY_MS, later ones within the interval (one save per changed user per round), rounds one at a time.
 */

const INTERVAL = 5000;

function rig(save?: (users: string[]) => Promise<void>) {
  const clock = new ManualClock();
  const rounds: string[][] = [];
  const wb = new DecisionWriteBehind({
    intervalMs: INTERVAL, clock, log: createLogger('silent'),
    save: save ?? (async (users) => void rounds.push([...users].sort())),
  });
  return { clock, rounds, wb };
}

/** Lets the promise jobs of a round run (the saves here answer at once). */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('DecisionWriteBehind', () => {
  it('saves a first decision within FIRST_SAVE_DELAY_MS and later ones within the interval, each user once per round', async () => {
    const { clock, rounds, wb } = rig();
    wb.touched('alice', true);
    clock.advance(FIRST_SAVE_DELAY_MS - 1);
    await settle();
    expect(rounds).toEqual([]);
    clock.advance(1);
    await settle();
    expect(rounds).toEqual([['alice']]);

    for (let i = 0; i < 50; i++) wb.touched('alice', false);
    wb.touched('bob', false);
    clock.advance(INTERVAL - 1);
    await settle();
    expect(rounds).toHaveLength(1);
    clock.advance(1);
    await settle();
    expect(rounds).toEqual([['alice'], ['alice', 'bob']]);
    expect(wb.waiting).toBe(0);
    expect(clock.pending).toBe(0); // nothing changed: no timer left
  });

  it('brings a waiting round forward when a user\'s first decision comes', async () => {
    const { clock, rounds, wb } = rig();
    wb.touched('alice', false);
    clock.advance(1000);
    wb.touched('bob', true);
    clock.advance(FIRST_SAVE_DELAY_MS);
    await settle();
    expect(rounds).toEqual([['alice', 'bob']]);
  });

  it('runs one round at a time: users changed during a round wait for the next, which starts once it ends', async () => {
    const answers: (() => void)[] = [];
    const seen: string[][] = [];
    const { clock, wb } = rig((users) => {
      seen.push([...users]);
      return new Promise<void>((r) => answers.push(r));
    });
    wb.touched('alice', true);
    clock.advance(FIRST_SAVE_DELAY_MS);
    expect(seen).toEqual([['alice']]);
    wb.touched('bob', true);
    clock.advance(INTERVAL * 2);
    expect(seen).toHaveLength(1); // the first round is not answered yet
    answers.shift()!();
    await settle();
    clock.advance(FIRST_SAVE_DELAY_MS); // bob's first decision: due soon after the round, not a whole interval
    expect(seen).toEqual([['alice'], ['bob']]);
  });

  it('writes a large round in chunks of SAVE_CHUNK and goes on past a failed chunk', async () => {
    const seen: number[] = [];
    const { clock, wb } = rig(async (users) => {
      seen.push(users.length);
      if (seen.length === 1) throw new Error('nats down');
    });
    for (let i = 0; i < SAVE_CHUNK * 2 + 1; i++) wb.touched(`u${i}`, true);
    clock.advance(FIRST_SAVE_DELAY_MS);
    await wb.flush();
    expect(seen).toEqual([SAVE_CHUNK, SAVE_CHUNK, 1]);
  });

  it('a flush asked for during a round resolves once the users changed since that round began are saved too', async () => {
    const seen: string[][] = [];
    const answers: (() => void)[] = [];
    const { wb } = rig((users) => new Promise<void>((r) => { seen.push(users); answers.push(r); }));
    wb.touched('alice', false);
    const first = wb.flush(); // a round under way, its save not answered yet
    wb.touched('bob', false);
    let done = false;
    const second = wb.flush().then(() => { done = true; });
    answers.shift()!();
    await first;
    await settle();
    expect(done).toBe(false); // bob's save is not answered yet
    expect(seen).toEqual([['alice'], ['bob']]);
    answers.shift()!();
    await second;
    expect(done).toBe(true);
  });

  it('saves nothing once stopped', async () => {
    const { clock, rounds, wb } = rig();
    wb.touched('alice', false);
    await wb.stop();
    wb.touched('bob', true);
    clock.advance(INTERVAL * 2);
    await settle();
    expect(rounds).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('is fed by the history\'s sink: the first packed decision of a user is first until the user is marked saved', async () => {
    const { clock, rounds, wb } = rig();
    const firsts: boolean[] = [];
    const history: DecisionHistory = new DecisionHistory(undefined, undefined, (user) => {
      const first = !history.saved(user);
      firsts.push(first);
      wb.touched(user, first);
    });
    const decision = (id: string, at: number): Decision => ({ id, route: 'held', reason: 'no_pc', targets: [], at });
    history.add('alice', decision('m1', 1));
    history.seal('alice');
    history.markSaved('alice');
    history.add('alice', decision('m2', 2));
    history.seal('alice');
    expect(firsts).toEqual([true, false]);
    expect(history.packedFor('alice')).toHaveLength(2);
    clock.advance(FIRST_SAVE_DELAY_MS);
    await settle();
    expect(rounds).toEqual([['alice']]);
  });
});
