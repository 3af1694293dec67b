import { connect, errors, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { SendListener } from '../cluster/send-listener.js';
import type { ChatMessage } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';
import { natsForFile } from './support/nats-server.js';

const packr = new Packr({ useRecords: false });

/**
 * Section 3: a `switchboard.send` with a reply subject is answered once durably accepted. A gateway that stops (a
 * rolling restart) must answer every request NATS already routed to it: a request in flight to it when it stopped
 * listening was dropped by a bare unsubscribe, and its chat server waited out its timeout with no answer.
 */
describe('switchboard.send: a stopping listener answers what NATS already sent it', () => {
  const nats = natsForFile();

  it('every request of a burst cut by stop() is answered or finds no responders; none times out', async () => {
    const listenerNc: NatsConnection = await connect({ servers: nats.server.url });
    try {
      for (let round = 0; round < 5; round++) {
        const accepted: ChatMessage[] = [];
        const accept = async (msg: ChatMessage) => (accepted.push(msg), 'accepted' as const);
        const listener = new SendListener({ nc: listenerNc, subject: `r${round}.send`, accept, acceptMany: (msgs) => acceptEach(accept, msgs), now: () => 1 });
        await listenerNc.flush(); // the subscription is known to the server
        const outcomes = Array.from({ length: 200 }, (_, i) =>
          nats.nc.request(`r${round}.send`, packr.pack({ id: `m${i}`, to: 'bob', title: 'hi' }), { timeout: 2000 }).then(
            (m) => `answered ${(packr.unpack(m.data) as { status: string }).status}`,
            (e: unknown) => (e instanceof errors.NoRespondersError || (e as Error).cause instanceof errors.NoRespondersError ? 'no responders' : `failed: ${(e as Error).message}`),
          ),
        );
        await nats.nc.flush(); // the burst has reached the server, which routes it to the listener as stop() begins
        await listener.stop();
        const results = await Promise.all(outcomes);
        expect(results.filter((r) => r !== 'answered accepted' && r !== 'no responders')).toEqual([]);
        expect(results.filter((r) => r === 'answered accepted').length).toBe(accepted.length);
      }
    } finally {
      await listenerNc.close();
    }
  });
});
