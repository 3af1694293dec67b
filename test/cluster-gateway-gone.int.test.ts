import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { accept, awaitDecision, msgId, Peer, uniqueUser, viewUntil } from './support/scenario.js';

/**
 * A gateway killed with SIGKILL closes none of its sessions. Its PC session used to stay at the owner, `active` until
 * the presence TTL (90 s), and a phone session on it online for good, taking deliveries that could only time out.
 * Section 4 routes by the sessions there are: once the gateway is gone (its heartbeat silent for 10 s,
 * cluster/membership.ts), the owner closes its sessions, and messages go to the phone on another gateway at once.
 */

let server: NatsServer;
let cluster: Cluster;
const peers: Peer[] = [];

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 3, partitions: 6 });
}, 60_000);

afterAll(async () => {
  for (const p of peers) p.close();
  await cluster?.dispose();
  await server?.dispose();
});

describe('a gateway that is gone', () => {
  it('its sessions are closed at the owner: the PC there no longer counts as active, the phone elsewhere gets the message', async () => {
    const [owner, gatewayToKill, other] = cluster.nodes;
    const { user } = await cluster.userOwnedBy((o) => o === cluster.id(owner), uniqueUser('gone'));
    const pc = await Peer.open(gatewayToKill, { sub: user, dev: 'pc', kind: 'pc' });
    const phone = await Peer.open(other, { sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
    peers.push(pc, phone);
    pc.send({ type: 'presence', state: 'active' });
    await viewUntil(other, user, (v) => v.pc.state === 'active' && v.devices.some((d) => d.online), 'PC active, phone online');

    await gatewayToKill.kill('SIGKILL');
    const view = await viewUntil(other, user, (v) => v.pc.sessions === 0, 'the dead gateway\'s PC session closed', 20_000);
    expect(view.pc.state).toBe('inactive');
    expect(view.devices).toMatchObject([{ device: 'phone', online: true }]);

    const id = msgId('after');
    await accept(other, { id, to: user });
    await phone.message(id, 3000); // directly, not after the PC's 5 s ack timeout
    expect((await awaitDecision(other, user, id)).route).toBe('mobile');
  }, 60_000);
});
