import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeProcess } from './support/node-process.js';
import { enc, msgId, Peer, uniqueUser, userView } from './support/scenario.js';
import { mountTmpfs, tmpfsRefusal, type Tmpfs } from './support/tmpfs.js';
import { until } from './support/ws-client.js';

/**
 * Chaos (issue 8 parts 3 and 5): the data dir's disk fills up (a small tmpfs), then space is freed. While full, sends
 * and device writes are answered 503 and `/readyz` is false; once freed, both take writes again without a restart;
 * after a kill -9 and a restart no message answered 503 is delivered and no token answered 503 exists. Before the
 * fix, the registry answered 503 until a restart and 43 messages answered 503 were delivered after one.
 */

const refusal = tmpfsRefusal();
if (refusal) console.warn(`store-disk-full: skipped: ${refusal}`);

describe.skipIf(refusal !== undefined)('disk full, then freed', () => {
  // No free-space floor: an 8 MiB file system is always below the default one; this test is about the writes themselves failing.
  const env = { SWITCHBOARD_ACK_TIMEOUT_MS: '600000', SWITCHBOARD_REPLAY_GRACE_MS: '3000', SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES: '0' };
  let fs: Tmpfs;
  const nodes: NodeProcess[] = [];
  const peers: Peer[] = [];

  afterAll(async () => {
    for (const p of peers) p.close();
    for (const n of nodes) await n.stop();
    fs?.unmount();
  });

  it('answers 503 while full, is writable again once freed, and never delivers what it answered 503', async () => {
    fs = mountTmpfs(8 * 1024);
    const dataDir = join(fs.dir, 'data');
    const user = uniqueUser('full');
    const node = await NodeProcess.start({ env, dataDir });
    nodes.push(node);
    const phone = await Peer.open(node, { sub: user, dev: 'mob', kind: 'mobile', os: 'ios' }, { autoAck: false });
    peers.push(phone);
    const put = (device: string) => node.http('PUT', `/v1/users/${enc(user)}/devices/${device}`, { os: 'android', token: `fcm-${device}-${'t'.repeat(30)}` });
    expect((await put('before')).status).toBe(200);
    const storedDevices = ['before', 'after'];

    const accepted: string[] = [];
    const refused: string[] = [];
    const send = async (tag: string): Promise<number> => {
      const id = msgId(tag);
      const res = await node.send({ id, to: user, text: `${tag} ${'x'.repeat(200)}` });
      if (res.status === 202) accepted.push(id);
      else if (res.status === 503) refused.push(id);
      else throw new Error(`unexpected ${res.status} ${JSON.stringify(res.body)}`);
      return res.status;
    };
    for (let i = 0; i < 20; i++) expect(await send('ok1')).toBe(202);

    // Fill the file system to the last byte.
    const filler = join(fs.dir, 'filler');
    const handle = await open(filler, 'w');
    const chunk = Buffer.alloc(64 * 1024, 1);
    try {
      for (;;) await handle.write(chunk);
    } catch (e) {
      expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    for (;;) {
      try {
        await handle.write(Buffer.alloc(1));
      } catch {
        break;
      }
    }
    await handle.close();

    // Writes now fail: accepts and device writes are answered 503, /readyz turns false.
    for (let i = 0; i < 200 && refused.length < 30; i++) await send('full');
    expect(refused.length).toBeGreaterThanOrEqual(30);
    // The log's last page may still have room for a few records: write until refused.
    const refusedDevices: string[] = [];
    for (let i = 0; i < 200 && refusedDevices.length < 3; i++) {
      const res = await put(`during${i}`);
      if (res.status === 200) storedDevices.push(`during${i}`);
      else {
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('store_failed');
        refusedDevices.push(`during${i}`);
      }
    }
    expect(refusedDevices).toHaveLength(3);
    expect((await node.http('GET', '/readyz', undefined, { auth: false })).status).toBe(503);

    // Space freed: both stores take writes again, without a restart.
    await rm(filler);
    await until(async () => (await node.http('GET', '/readyz', undefined, { auth: false })).status === 200, 10_000, '/readyz 200 after freeing space');
    expect((await put('after')).status).toBe(200);
    for (let i = 0; i < 20; i++) expect(await send('ok2')).toBe(202);
    expect(phone.received.filter((id) => refused.includes(id))).toEqual([]);
    const failureLines = node.lines.filter((l) => l.includes('store write failed'));
    expect(failureLines.length).toBeGreaterThan(0);
    expect(failureLines.length).toBeLessThan(10); // rate-limited
    expect(node.lines.some((l) => l.includes('store writable again'))).toBe(true);

    // Restart after kill -9: every 202 is delivered, nothing answered 503 is, and only the 200'd tokens exist.
    await node.kill('SIGKILL');
    const again = await NodeProcess.start({ env, dataDir, apiKey: node.apiKey, jwtSecret: node.jwtSecret });
    nodes.push(again);
    const phone2 = await Peer.open(again, { sub: user, dev: 'mob', kind: 'mobile', os: 'ios' }, { autoAck: true });
    peers.push(phone2);
    await until(() => accepted.every((id) => phone2.received.includes(id)), 15_000, 'every 202 delivered after the restart');
    expect(phone2.received.filter((id) => refused.includes(id)), 'messages answered 503 but delivered').toEqual([]);
    const devices = (await userView(again, user)).devices.filter((d) => d.device !== 'mob').map((d) => d.device).sort();
    expect(devices).toEqual(storedDevices.sort());
  }, 60_000);
});
