import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, type Disconnect } from '../clients/client.js';
import type { ClearFrame } from '../clients/wire.js';
import { NodeProcess } from './support/node-process.js';
import { msgId, uniqueUser } from './support/scenario.js';
import { signToken, until } from './support/ws-client.js';

/**
 * Reads an app makes while offline, one `read([id])` a message, against a real node over loopback: at the next
 * welcome they must not pass the server's frame rate (SWITCHBOARD_FRAME_RATE, close 4429, section 2), and every one
 * must reach the server (the user's other session gets `clear` frames for all of them, the badge ends at 0).
 */

let node: NodeProcess;
const running: SwitchboardClient[] = [];

beforeAll(async () => {
  // 10 frames a second, bursts of 20: 60 reads sent a frame each would be closed 4429.
  node = await NodeProcess.start({ env: { SWITCHBOARD_FRAME_RATE: '10' } });
});
afterAll(async () => {
  for (const c of running) c.stop();
  await node?.stop();
  await node?.removeData();
});

function pc(user: string, device: string) {
  const client = new SwitchboardClient({
    url: node.wsUrl, token: () => signToken(node.jwtSecret, { sub: user, dev: device, kind: 'pc' }), WebSocket, backoff: { initialMs: 100, maxMs: 500 },
  });
  const disconnects: Disconnect[] = [];
  const shown: string[] = [];
  const clears: ClearFrame[] = [];
  client.on('disconnect', (d) => disconnects.push(d));
  client.on('message', (m) => shown.push(m.id));
  client.on('clear', (c) => clears.push(c));
  running.push(client);
  return { client, disconnects, shown, clears };
}

describe('reads queued while offline', () => {
  it('60 single-id reads made offline reach the server at the next welcome without a 4429 close', async () => {
    const user = uniqueUser('rq');
    const laptop = pc(user, 'laptop');
    laptop.client.start();
    laptop.client.setPresence({ state: 'active' });
    await until(() => laptop.client.state === 'open', 5000, 'laptop open');
    const ids = Array.from({ length: 60 }, () => msgId('rq'));
    for (const id of ids) expect((await node.http('POST', '/v1/messages', { id, to: user, text: id })).status).toBe(202);
    await until(() => laptop.shown.length === ids.length, 10_000, 'all delivered to the laptop');

    const desktop = pc(user, 'desktop');
    for (const id of ids) desktop.client.read([id]); // offline: queued
    desktop.client.start();
    await until(() => new Set(laptop.clears.flatMap((c) => c.ids)).size === ids.length, 10_000, 'every read cleared on the laptop');
    expect(laptop.clears.at(-1)?.badge).toBe(0);
    expect(desktop.disconnects.map((d) => d.error.code)).toEqual([]);
    expect(desktop.client.state).toBe('open');
  });
});
