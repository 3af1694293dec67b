import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackDecision } from '../actors/decision-pack.js';
import { KvDecisionHandoff } from '../cluster/decision-handoff.js';
import { DEFAULT_SUBJECT_PREFIX } from '../runtime/config.js';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import type { NodeProcess } from './support/node-process.js';
import { accept, awaitDecision, decisions, msgId, uniqueUser, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * PROTOCOL.md section 3 (`GET …/decisions`: at least the last 100 kept) across a graceful partition handoff: the
 * owner stopped with SIGTERM saves its users' decisions (cluster/decision-handoff.ts) and the next owner answers with
 * them, its own newer ones first; and across a crash of the owner, from what it wrote behind
 * (cluster/decision-write-behind.ts).
 */

let server: NatsServer;
let cluster: Cluster;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: 4 });
}, 60_000);

afterAll(async () => {
  await cluster?.dispose();
  await server?.dispose();
});

/** Runs `test` on a two-node cluster with a NATS server of its own (its nodes stopped, added and killed at will). */
async function withOwnCluster(test: (chain: Cluster, nats: NatsServer) => Promise<void>, env?: Record<string, string>): Promise<void> {
  const own = await NatsServer.start();
  const chain = await Cluster.start({ natsUrls: [own.url], nodes: 2, partitions: 4, env }).catch(async (e) => {
    await own.dispose();
    throw e;
  });
  try {
    await test(chain, own);
  } finally {
    await chain.dispose();
    await own.dispose();
  }
}

describe('cluster decision history', () => {
  it('outlives a graceful handoff: the next owner answers with the previous owner\'s decisions', async () => {
    const [first, second] = cluster.nodes;
    const firstId = cluster.id(first);
    const { user } = await cluster.userOwnedBy((owner) => owner === firstId, uniqueUser('handoff'));
    const before = Array.from({ length: 3 }, (_, i) => msgId(`before${i}`));
    // No session: each is held, one decision each.
    for (const id of before) {
      await accept(second, { id, to: user });
      await awaitDecision(second, user, id);
    }
    const atOwner = await decisions(second, user);
    expect(atOwner.map((d) => d.id)).toEqual([...before].reverse());

    expect(await first.stop()).toEqual({ code: 0, signal: null });
    await cluster.awaitSettled(20_000, [second]);
    expect(await cluster.ownerOf(user, second)).toBe(cluster.id(second));

    const after = msgId('after');
    await accept(second, { id: after, to: user });
    await awaitDecision(second, user, after);
    const now = await decisions(second, user);
    expect(now[0].id).toBe(after);
    expect(now.slice(1)).toEqual(atOwner);
  }, 60_000);

  it('outlives a chain of handoffs (A to B to C) where B was never asked for the decisions', async () => {
    // A cluster (and NATS server) of its own: A and B now, C later.
    await withOwnCluster(async (chain) => {
      const [a, b] = chain.nodes;
      const { user } = await chain.userOwnedBy((owner) => owner === chain.id(a), uniqueUser('chain'));
      const atA = [msgId('a0'), msgId('a1')];
      for (const id of atA) await accept(b, { id, to: user });
      await awaitDecision(a, user, atA[1]);

      expect(await a.stop()).toEqual({ code: 0, signal: null });
      await chain.awaitSettled(20_000, [b]);
      const atB = msgId('b0');
      await accept(b, { id: atB, to: user });
      // Awaited through the user's view, not GET …/decisions: B must never look up A's saved history itself.
      await viewUntil(b, user, (v) => v.held === 3, 'three messages held at B', 10_000);

      const c = await chain.add();
      await chain.awaitSettled(20_000, [b, c]);
      expect(await b.stop()).toEqual({ code: 0, signal: null });
      await chain.awaitSettled(20_000, [c]);
      expect(await chain.ownerOf(user, c)).toBe(chain.id(c));

      const ids = (await decisions(c, user)).map((d) => d.id);
      for (const id of [...atA, atB]) expect(ids).toContain(id);
    });
  }, 90_000);

  it('without write-behind (SWITCHBOARD_DECISION_SAVE_MS=0) starts anew after a crash takeover: an older handoff\'s saved history is not shown as the latest', async () => {
    // The crashed tenure's decisions are gone, and the value from the handoff before it must not come back as if it
    // were the user's latest history.
    await withOwnCluster(async (chain) => {
      const { user, atA, owner, survivor } = await handoffThenOneMore(chain, 'crash');
      const afterCrash = await crashOwner(chain, user, owner, survivor);
      // The crashed tenure took its history with it; A's saved value, older than that tenure, stays out.
      const ids = (await decisions(survivor, user)).map((d) => d.id);
      expect(ids).toContain(afterCrash);
      expect(ids).not.toContain(atA);
    }, { SWITCHBOARD_DECISION_SAVE_MS: '0' });
  }, 90_000);

  it('outlives a crash of the owner (kill -9): the next owner answers with what the crashed one wrote behind', async () => {
    // The survivor shows the whole trail: its own, the crashed owner's, and A's.
    await withOwnCluster(async (chain, nats) => {
      const { user, atA, beforeCrash, owner, survivor } = await handoffThenOneMore(chain, 'kill');
      // What the bucket holds for the user, read as a next owner would (any tenure before a far future one).
      const nc = await connect({ servers: nats.url });
      try {
        const bucket = new KvDecisionHandoff(await new Kvm(nc).open(`${DEFAULT_SUBJECT_PREFIX}_decisions`));
        const saved = async () => (await bucket.load(user, { since: 0, before: Number.MAX_SAFE_INTEGER })).map((p) => unpackDecision(p).id);
        // The owner's first decision for the user in its tenure is saved within FIRST_SAVE_DELAY_MS (50 ms).
        await until(async () => (await saved()).includes(beforeCrash), 10_000, 'the owner wrote its history behind');
        expect(await saved()).toEqual([atA, beforeCrash]);
      } finally {
        await nc.close();
      }
      const afterCrash = await crashOwner(chain, user, owner, survivor);
      expect((await decisions(survivor, user)).map((d) => d.id)).toEqual([afterCrash, beforeCrash, atA]);
    });
  }, 90_000);
});

/**
 * A graceful handoff (A, the user's owner, stops; C joins) leaves a saved value with A's decision `atA`; whoever owns
 * the user then (B, or C after the rebalance) shows it and routes `beforeCrash` on top.
 */
async function handoffThenOneMore(chain: Cluster, tag: string) {
  const [a, b] = chain.nodes;
  const { user } = await chain.userOwnedBy((owner) => owner === chain.id(a), uniqueUser(tag));
  const atA = msgId('a0');
  await accept(b, { id: atA, to: user });
  await awaitDecision(a, user, atA);
  expect(await a.stop()).toEqual({ code: 0, signal: null });
  const c = await chain.add();
  await chain.awaitSettled(20_000, [b, c]);
  const owner = (await chain.ownerOf(user, b)) === chain.id(b) ? b : c;
  const survivor = owner === b ? c : b;
  const beforeCrash = msgId('x0');
  await accept(survivor, { id: beforeCrash, to: user });
  await awaitDecision(owner, user, beforeCrash);
  expect((await decisions(owner, user)).map((d) => d.id)).toEqual([beforeCrash, atA]);
  return { user, atA, beforeCrash, owner, survivor };
}

/** SIGKILL of `owner`; once `survivor` took the user over, it routes one more message: its id. */
async function crashOwner(chain: Cluster, user: string, owner: NodeProcess, survivor: NodeProcess): Promise<string> {
  await owner.kill('SIGKILL');
  await chain.awaitSettled(20_000, [survivor]);
  expect(await chain.ownerOf(user, survivor)).toBe(chain.id(survivor));
  const afterCrash = msgId('y0');
  await accept(survivor, { id: afterCrash, to: user });
  await awaitDecision(survivor, user, afterCrash);
  return afterCrash;
}
