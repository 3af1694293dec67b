import { describe, expect, it } from 'vitest';
import { planRound, type HeldLease, type RoundInput, type RoundPlan } from '../cluster/lease-plan.js';
import type { LeaseEntry } from '../cluster/lease-value.js';

const NOW = 10_000;
const held = (o: Partial<HeldLease> = {}): HeldLease => ({ validUntil: NOW + 1500, sentAt: NOW - 100, renewing: false, releasing: false, ...o });
const lease = (owner: string, expiresAt: number): LeaseEntry => ({ value: { owner, expiresAt, epoch: 1 }, revision: 7 });

function input(o: Partial<RoundInput> = {}): RoundInput {
  return {
    now: NOW, nodeId: 'a', partitions: 2, renewMs: 500, state: 'running', target: ['a', 'b'],
    held: new Map(), acquiring: new Set(), seen: new Map(), ...o,
  };
}

/** Each row names the rule it proves (cluster/lease-keeper.ts, README "Cluster"). */
const rows: { rule: string; in: RoundInput; out: Partial<RoundPlan> }[] = [
  {
    rule: 'fencing: a lease past its local deadline is lost before anything else, even with a write in flight',
    in: input({ held: new Map([[0, held({ validUntil: NOW, renewing: true })]]) }),
    out: { lose: [0], renew: [], handOff: [], acquire: [] },
  },
  {
    rule: 'renew a held lease once half the renewal interval passed since its last write',
    in: input({ held: new Map([[0, held({ sentAt: NOW - 250 })]]) }),
    out: { lose: [], renew: [0], acquire: [] },
  },
  {
    rule: 'no second write while one is in flight for the partition',
    in: input({ held: new Map([[0, held({ sentAt: NOW - 400, renewing: true })]]) }),
    out: { renew: [] },
  },
  {
    rule: 'the next round comes no later than the nearest local deadline',
    in: input({ held: new Map([[0, held({ validUntil: NOW + 120 })]]) }),
    out: { nextMs: 120 },
  },
  {
    rule: 'a partition the assignment moved elsewhere is handed off gracefully',
    in: input({ held: new Map([[1, held()]]) }),
    out: { handOff: [1], acquire: [0] },
  },
  {
    rule: 'a handoff already under way is not started twice',
    in: input({ held: new Map([[1, held({ releasing: true })]]) }),
    out: { handOff: [] },
  },
  {
    rule: 'stopping: every held partition is handed off and nothing is taken',
    in: input({ state: 'stopping', held: new Map([[0, held()]]) }),
    out: { handOff: [0], acquire: [] },
  },
  {
    rule: 'take an assigned partition whose lease is free (never written, released, or expired by its own expiresAt)',
    in: input({ partitions: 3, target: ['a', 'a', 'a'], seen: new Map([[1, lease('', 0)], [2, lease('b', NOW)]]) }),
    out: { acquire: [0, 1, 2] },
  },
  {
    rule: 'an assigned partition another node still holds is not taken; the next round comes the moment it lapses',
    in: input({ seen: new Map([[0, lease('b', NOW + 300)]]) }),
    out: { acquire: [], nextMs: 301 },
  },
  {
    rule: 'a lease this node wrote before a restart is taken back at once',
    in: input({ seen: new Map([[0, lease('a', NOW + 1900)]]) }),
    out: { acquire: [0] },
  },
  {
    rule: 'an acquisition in flight is not started twice',
    in: input({ acquiring: new Set([0]) }),
    out: { acquire: [] },
  },
  {
    rule: 'not live in membership (no assignment): keep renewing what is held, take nothing, hand nothing off',
    in: input({ target: undefined, held: new Map([[0, held({ sentAt: NOW - 300 })]]) }),
    out: { renew: [0], handOff: [], acquire: [] },
  },
];

describe('planRound: one lease round as a pure function', () => {
  it.each(rows)('$rule', ({ in: i, out }) => {
    expect(planRound(i)).toMatchObject(out);
  });
});
