import { afterAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { msgId, Peer, uniqueUser } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Chaos (issue 8, tests): kill -9 of the embedded node under load, 5 times at random moments, restarted on its data
 * dir each time; every message answered 202 is counted and must reach its user (lost 0). Each user has one phone
 * that reconnects after every restart. With no reconnect grace, what is replayed after a restart (and what is
 * accepted before the phones are back) finds nobody reachable: it is held (section 4) and delivered when the phone
 * reconnects, so this tests the durability of both the inbox and the held messages.
 */

const KILLS = 5;
const USERS = 10;
const SENDERS = 6;
const env = { SWITCHBOARD_REPLAY_GRACE_MS: '0' };

const started: NodeProcess[] = [];
const peers: Peer[] = [];
afterAll(async () => {
  for (const p of peers) p.close();
  for (const n of started) await n.stop();
  await started[0]?.removeData();
});

describe('kill -9 under load, 5 times', () => {
  it('loses no accepted message', async () => {
    const users = Array.from({ length: USERS }, () => uniqueUser('kill'));
    const accepted = new Map<string, string>(); // id -> user
    const received = new Map<string, number>(); // id -> times received, over every phone of every run
    let first: NodeProcess | undefined;
    const boot = async (): Promise<NodeProcess> => {
      const node = await NodeProcess.start({ env, dataDir: first?.dataDir, apiKey: first?.apiKey, jwtSecret: first?.jwtSecret });
      started.push(node);
      first ??= node;
      for (const user of users) {
        const phone = await Peer.open(node, { sub: user, dev: 'mob', kind: 'mobile', os: 'ios' }, { autoAck: true });
        phone.onMessage((id) => received.set(id, (received.get(id) ?? 0) + 1)); // held replays right after the welcome included
        peers.push(phone);
      }
      return node;
    };

    const kills: { afterMs: number; acceptedSoFar: number }[] = [];
    for (let k = 0; k < KILLS; k++) {
      const node = await boot();
      let running = true;
      const sender = async (): Promise<void> => {
        while (running) {
          const id = msgId('k');
          const to = users[Math.floor(Math.random() * users.length)];
          try {
            const res = await node.send({ id, to, text: `chaos ${id}` });
            if (res.status === 202) accepted.set(id, to);
            else if (res.status !== 503) throw new Error(`unexpected ${res.status} ${JSON.stringify(res.body)}`);
          } catch (e) {
            if ((e as Error).message.startsWith('unexpected')) throw e;
            return; // connection refused or reset by the kill: not accepted
          }
        }
      };
      const senders = Array.from({ length: SENDERS }, () => sender());
      const afterMs = 500 + Math.floor(Math.random() * 3500); // a random moment, also before and after the replay grace
      await new Promise((r) => setTimeout(r, afterMs));
      await node.kill('SIGKILL');
      running = false;
      await Promise.all(senders);
      kills.push({ afterMs, acceptedSoFar: accepted.size });
      for (const p of peers.splice(0)) p.close();
    }

    await boot();
    const lost = () => [...accepted.keys()].filter((id) => !received.has(id));
    await until(() => lost().length === 0, 30_000, 'every accepted message delivered').catch(() => undefined);
    const duplicates = [...received.values()].filter((n) => n > 1).length;
    const summary = `accepted ${accepted.size}, delivered ${accepted.size - lost().length}, lost ${lost().length}, duplicated ${duplicates}; kills ${JSON.stringify(kills)}`;
    console.log(`kill-chaos: ${summary}`);
    expect(accepted.size).toBeGreaterThan(KILLS * 20);
    expect(lost(), summary).toEqual([]);
  }, 90_000);
});
