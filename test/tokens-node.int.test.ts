import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { enc, Peer, uniqueUser, userView, viewUntil } from './support/scenario.js';

/**
 * Issue 9 through a real node (embedded mode, built dist): one token, one (user, device), the owning actors learn
 * of removals, the unregister frame, and tokens never in the log. Needs `npm run build`.
 */

let node: NodeProcess;
const peers: Peer[] = [];
beforeAll(async () => {
  node = await NodeProcess.start();
});
afterAll(async () => {
  for (const p of peers) p.close();
  await node?.stop();
  await node?.removeData();
});

const put = (user: string, device: string, body: unknown) => node.http('PUT', `/v1/users/${enc(user)}/devices/${enc(device)}`, body);
const hasToken = async (user: string, device: string) => (await userView(node, user)).devices.find((d) => d.device === device)?.hasToken;

describe('push tokens on a node (issue 9)', () => {
  it('PUT alice/phone T then PUT bob/phone T: alice no longer has it, even with her actor already holding it', async () => {
    const alice = uniqueUser('alice');
    const bob = uniqueUser('bob');
    const token = 'f0'.repeat(32);
    expect((await put(alice, 'phone', { os: 'ios', token })).status).toBe(200);
    expect(await hasToken(alice, 'phone')).toBe(true); // alice's actor is live and holds the token in memory
    expect((await put(bob, 'phone', { os: 'ios', token })).status).toBe(200);
    await viewUntil(node, alice, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken), 'alice lost the token');
    expect(await hasToken(bob, 'phone')).toBe(true);
    expect(node.lines.some((l) => l.includes(token))).toBe(false);
  });

  it('the same token under two devices of one user stays on the newer one only', async () => {
    const user = uniqueUser('two');
    const token = 'fcm-token:APA91b-two-devices';
    await put(user, 'phone', { os: 'android', token });
    await put(user, 'tablet', { os: 'android', token });
    await viewUntil(node, user, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken), 'phone lost the token');
    expect(await hasToken(user, 'tablet')).toBe(true);
  });

  it('a register frame moves a token too, and unregister removes the device\'s own token', async () => {
    const alice = uniqueUser('alice');
    const bob = uniqueUser('bob');
    const token = 'hms-token.unregister';
    expect((await put(alice, 'phone', { os: 'harmony', token })).status).toBe(200);
    const phone = await Peer.open(node, { sub: bob, dev: 'phone', kind: 'mobile', os: 'harmony' });
    peers.push(phone);
    phone.send({ type: 'register', os: 'harmony', token });
    await phone.client.next((f) => f.type === 'registered');
    await viewUntil(node, alice, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken), 'alice lost the token');
    expect(await hasToken(bob, 'phone')).toBe(true);
    phone.send({ type: 'unregister' });
    expect(await phone.client.next((f) => f.type === 'unregistered')).toEqual({ type: 'unregistered' });
    await viewUntil(node, bob, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken && d.online), 'bob unregistered, still online');
  });
});
