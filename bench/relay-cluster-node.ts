import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { startRelay, type RelayMessage } from './relay.js';

/**
 * `node dist/bench/relay-cluster-node.js <nats-url>`: one node of the bare core-NATS relay (issue 13), the baseline of
 * the cluster bench. It does the cluster's NATS and socket work with no routing, no JetStream, no actors:
 *
 * - answers `switchboard.send` requests (queue group, MessagePack, `{id, status: 'accepted'}`), as the gateways do;
 * - forwards each message as one core NATS publish to `relay.u.<user>`, subscribed by the node holding the
 *   user's sockets (one NATS message per delivery, as the owner's `deliver`);
 * - writes the frame to the socket the presence bit picks (bench/relay.ts) and publishes each client ack to
 *   `relay.ack` (one NATS message per ack, as the gateway's forward to the owner), read by a queue group.
 *
 * Prints `relay listening {"port":N}` once its WebSocket port is bound.
 */

const packr = new Packr({ useRecords: false });
const url = process.argv[2];
const nc = await connect({ servers: url, name: 'bench-relay-node' });
const relay = await startRelay();
relay.corked = true; // as the gateway

nc.subscribe('switchboard.send', {
  queue: 'relay-gateways',
  callback: (_err, m) => {
    const msg = packr.unpack(m.data) as RelayMessage;
    nc.publish(`relay.u.${msg.to}`, m.data);
    m.respond(packr.pack({ id: msg.id, status: 'accepted' }));
  },
});
nc.subscribe('relay.ack', { queue: 'relay-owners', callback: (_err, m) => void packr.unpack(m.data) });
relay.onUser = (user) => {
  nc.subscribe(`relay.u.${user}`, { callback: (_err, m) => void relay.accept(packr.unpack(m.data) as RelayMessage) });
};
relay.onAck = (user, id) => nc.publish('relay.ack', packr.pack({ user, id }));
await nc.flush();
process.stdout.write(`relay listening ${JSON.stringify({ port: relay.port })}\n`);

const stop = async (): Promise<void> => {
  await relay.close();
  await nc.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
