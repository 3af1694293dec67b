import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient } from '../clients/client.js';
import { PcPresenceReporter, type PresenceAdapter, type PresenceUpdate } from '../clients/pc-presence.js';
import type { PolicyFrame } from '../clients/wire.js';
import { NodeProcess } from './support/node-process.js';
import { enc, Peer, uniqueUser, viewUntil } from './support/scenario.js';
import { signToken, until } from './support/ws-client.js';

/**
 * Issue 10 part 2, live: a `PUT …/policy` reaches the user's open PC sessions at once as a `policy` frame carrying
 * the new `idleAfterMs` (not only at their next `welcome`), and the PC presence reporter restarts its adapters with
 * it. A real embedded node (child process), the real client core over real WebSockets; phones get no such frame.
 */

let node: NodeProcess;
let client: SwitchboardClient | undefined;

beforeAll(async () => {
  node = await NodeProcess.start();
});
afterAll(async () => {
  client?.stop();
  await node?.stop();
  await node?.removeData();
});

/** Records the threshold each start was given. */
class RecordingAdapter implements PresenceAdapter {
  readonly signal = 'system' as const;
  readonly starts: number[] = [];
  start(update: (u: PresenceUpdate) => void, opts: { idleAfterMs: number }) {
    this.starts.push(opts.idleAfterMs);
    update({ idleMs: 0 });
  }
  stop() {}
}

describe('policy frame on a policy change', () => {
  it('PUT policy -> the open PC gets {type:"policy", idleAfterMs} and applies it; the phone gets nothing', async () => {
    const user = uniqueUser('live');
    client = new SwitchboardClient({ url: node.wsUrl, token: () => signToken(node.jwtSecret, { sub: user, dev: 'desk', kind: 'pc' }), WebSocket });
    const policies: PolicyFrame[] = [];
    client.on('policy', (p) => policies.push(p));
    client.start();
    await until(() => client!.state === 'open', 5000, 'PC welcome');
    expect(client.welcome?.idleAfterMs).toBe(60_000);
    const adapter = new RecordingAdapter();
    const reporter = new PcPresenceReporter(client, [adapter]);
    const phone = await Peer.open(node, { sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
    try {
      await reporter.start();
      await viewUntil(node, user, (v) => v.pc.state === 'active' && v.devices.some((d) => d.online), 'PC active, phone online');

      const put = await node.http('PUT', `/v1/users/${enc(user)}/policy`, { mobile: 'when_away', idleAfterSeconds: 120 });
      expect(put.status).toBe(200);
      await until(() => policies.length === 1, 5000, 'policy frame at the PC');
      expect(policies).toEqual([{ type: 'policy', idleAfterMs: 120_000 }]);
      expect(client.welcome?.idleAfterMs).toBe(120_000);
      await until(() => adapter.starts.length === 2, 5000, 'adapters restarted');
      expect(adapter.starts).toEqual([60_000, 120_000]);

      // The frames for all sessions leave the owner together; a pong after the PC's frame proves none was queued for the phone.
      phone.send({ type: 'ping' });
      await phone.client.next((f) => f.type === 'pong');
      expect(phone.client.frames.filter((f) => f.type === 'policy')).toEqual([]);
    } finally {
      reporter.stop();
      phone.close();
    }
  });
});
