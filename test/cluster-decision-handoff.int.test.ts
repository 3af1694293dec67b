import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { accept, awaitDecision, decisions, msgId, uniqueUser, viewUntil } from './support/scenario.js';

/**
 * PROTOCOL.md section 3 (`GET …/decisions`: at least the last 100 kept) across a graceful partition handoff: the
 * owner stopped with SIGTERM saves its users' decisions (cluster/decision-handoff.ts) and the next owner answers with
 * them, its own newer ones first.
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
async function withOwnCluster(test: (chain: Cluster) => Promise<void>): Promise<void> {
  const own = await NatsServer.start();
  const chain = await Cluster.start({ natsUrls: [own.url], nodes: 2, partitions: 4 }).catch(async (e) => {
    await own.dispose();
    throw e;
  });
  try {
    await test(chain);
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

  it('starts anew after a crash takeover: an older handoff\'s saved history is not shown as the latest', async () => {
    // A graceful handoff (A stops) leaves a saved value; the next owner then dies with SIGKILL. Its tenure's decisions
    // are gone, and the value from the handoff before it must not come back as if it were the user's latest history.
    await withOwnCluster(async (chain) => {
      const [a, b] = chain.nodes;
      const { user } = await chain.userOwnedBy((owner) => owner === chain.id(a), uniqueUser('crash'));
      const atA = msgId('a0');
      await accept(b, { id: atA, to: user });
      await awaitDecision(a, user, atA);
      expect(await a.stop()).toEqual({ code: 0, signal: null });
      const c = await chain.add();
      await chain.awaitSettled(20_000, [b, c]);

      // Whoever owns the user now (B, or C after a graceful rebalance) shows A's decision, then routes one more.
      const owner = (await chain.ownerOf(user, b)) === chain.id(b) ? b : c;
      const survivor = owner === b ? c : b;
      const beforeCrash = msgId('x0');
      await accept(survivor, { id: beforeCrash, to: user });
      await awaitDecision(owner, user, beforeCrash);
      expect((await decisions(owner, user)).map((d) => d.id)).toEqual([beforeCrash, atA]);

      await owner.kill('SIGKILL');
      await chain.awaitSettled(20_000, [survivor]);
      expect(await chain.ownerOf(user, survivor)).toBe(chain.id(survivor));
      const afterCrash = msgId('y0');
      await accept(survivor, { id: afterCrash, to: user });
      await awaitDecision(survivor, user, afterCrash);
      // The crashed tenure took its history with it; A's saved value, older than that tenure, stays out.
      const ids = (await decisions(survivor, user)).map((d) => d.id);
      expect(ids).toContain(afterCrash);
      expect(ids).not.toContain(atA);
    });
  }, 90_000);
});
