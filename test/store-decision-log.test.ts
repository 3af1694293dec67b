import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DecisionHistory } from '../actors/decision-history.js';
import { packDecision, packedAt } from '../actors/decision-pack.js';
import type { Decision } from '../protocol/index.js';
import { AppendLog } from '../store/append-log.js';
import { FileDecisionLog, type DecisionLogRecord } from '../store/decision-log.js';
import { until } from './support/ws-client.js';

/** PROTOCOL.md section 3 (`GET …/decisions`: at least the last 100 kept) across restarts of the embedded node. */

const AT = Date.UTC(2026, 11, 1, 9, 0);
const decision = (i: number, id = `m${i}`): Decision => ({ id, route: 'mobile', reason: 'idle', at: AT + i, targets: [{ device: 'phone', via: 'apns', outcome: 'ok' }] });
const packed = (i: number): string => packDecision(decision(i));

describe('FileDecisionLog', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sb-decisions-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('reads back what was added, per user in order, after close and reopen', async () => {
    const log = await FileDecisionLog.open(dir);
    expect(log.restored().size).toBe(0);
    log.add('alice', packed(1));
    log.add('bob', packed(2));
    log.add('alice', packed(3));
    await log.close();
    const again = await FileDecisionLog.open(dir);
    expect([...again.restored()]).toEqual([['alice', [packed(1), packed(3)]], ['bob', [packed(2)]]]);
    // Handed out once: the log does not keep a second copy of every history in memory.
    expect(again.restored().size).toBe(0);
    await again.close();
  });

  it('writes behind, every flushMs, without a close (what a kill -9 keeps)', async () => {
    const log = await FileDecisionLog.open(dir, { flushMs: 10 });
    log.add('alice', packed(1));
    const records: DecisionLogRecord[] = [];
    await until(async () => {
      records.length = 0;
      await AppendLog.replay<DecisionLogRecord>(join(dir, 'decisions.log'), (r) => records.push(r));
      return records.length > 0;
    }, 5000, 'the decision on disk');
    expect(records).toEqual([{ d: ['alice', packed(1)] }]);
    // One record per flush, whatever the number of decisions in it.
    for (let i = 2; i < 50; i++) log.add('alice', packed(i));
    await log.flush();
    const after: DecisionLogRecord[] = [];
    await AppendLog.replay<DecisionLogRecord>(join(dir, 'decisions.log'), (r) => after.push(r));
    expect(after.length).toBe(2);
    expect(after[1].d.length).toBe(2 * 48);
    await log.close();
  });

  it('a flush asked for while another is under way resolves once what was added meanwhile is on disk too', async () => {
    const log = await FileDecisionLog.open(dir, { flushMs: 3_600_000 });
    log.add('alice', packed(1));
    const first = log.flush(); // under way (a write-behind tick, say)
    log.add('alice', packed(2));
    await log.flush();
    const records: DecisionLogRecord[] = [];
    await AppendLog.replay<DecisionLogRecord>(join(dir, 'decisions.log'), (r) => records.push(r));
    expect(records.flatMap((r) => r.d)).toEqual(['alice', packed(1), 'alice', packed(2)]);
    await first;
    await log.close();
  });

  it('a burst larger than one log record (16 MiB) is written in several and read back whole', async () => {
    const log = await FileDecisionLog.open(dir, { perUser: 100 });
    const long = (i: number): string => packDecision(decision(i, `${'x'.repeat(120)}-${i}`));
    const users = Array.from({ length: 800 }, (_, u) => `${'u'.repeat(120)}-${u}`);
    for (let i = 0; i < 100; i++) for (const user of users) log.add(user, long(i));
    await log.close(); // 80,000 decisions of ~270 chars: ~21 MiB in one flush
    const again = await FileDecisionLog.open(dir, { perUser: 100 });
    const restored = again.restored();
    expect(restored.size).toBe(800);
    expect(restored.get(users[799])).toEqual(Array.from({ length: 100 }, (_, i) => long(i)));
    await again.close();
  });

  it('keeps only the newest few hundred per user while reading a long log', async () => {
    const log = await FileDecisionLog.open(dir, { perUser: 10 });
    for (let i = 0; i < 1000; i++) log.add('busy', packed(i));
    await log.close();
    const again = await FileDecisionLog.open(dir, { perUser: 10 });
    const list = again.restored().get('busy')!;
    expect(list.length).toBeGreaterThanOrEqual(10);
    expect(list.length).toBeLessThanOrEqual(40);
    expect(list[list.length - 1]).toBe(packed(999));
    await again.close();
  });

  it('compacts into a snapshot of the live history once the file outgrows it; decisions added meanwhile follow it', async () => {
    const history = new DecisionHistory(1_000_000, 5, (user, p) => log.add(user, p));
    const log = await FileDecisionLog.open(dir, { perUser: 5, compactMinBytes: 2048 });
    log.snapshotFrom({ entries: () => history.packedEntries() });
    const add = (user: string, i: number): void => {
      history.add(user, decision(i, `${user}-${i}`));
      history.seal(user);
    };
    let grewTo = 0;
    for (let i = 0; i < 400; i++) {
      add(i % 2 === 0 ? 'alice' : 'bob', i);
      if (i % 20 === 19) {
        const flushing = log.flush();
        add('carol', 1000 + i); // packed while a write (or the compaction) is under way
        await flushing;
        grewTo = Math.max(grewTo, log.bytes);
      }
    }
    await log.close();
    // Without compaction the file would hold all 420 decisions: it was rewritten along the way.
    let onDisk = 0;
    await AppendLog.replay<DecisionLogRecord>(join(dir, 'decisions.log'), (r) => (onDisk += r.d.length / 2));
    expect(onDisk).toBeLessThan(200);
    expect(grewTo).toBeGreaterThan(2048);
    expect(await readdir(dir)).toEqual(['decisions.log']);
    const again = await FileDecisionLog.open(dir, { perUser: 5 });
    const restored = new DecisionHistory(1_000_000, 5);
    restored.restore(again.restored());
    for (const user of ['alice', 'bob', 'carol']) expect(restored.newest(user, 5)).toEqual(history.newest(user, 5));
    await again.close();
  });

  it('a failed snapshot leaves the old log, whole', async () => {
    let failTmp = false;
    const failures: string[] = [];
    const history = new DecisionHistory(1_000_000, 100, (user, p) => log.add(user, p));
    const log = await FileDecisionLog.open(dir, {
      compactMinBytes: 512,
      datasync: async (file) => {
        if (failTmp) {
          failTmp = false; // the snapshot's first write fails; the old log's next write succeeds
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        }
        await file.datasync();
      },
      onWriteFailure: (f) => failures.push(f.path),
    });
    log.snapshotFrom({ entries: () => history.packedEntries() });
    for (let i = 0; i < 30; i++) {
      history.add('alice', decision(i));
      history.seal('alice');
    }
    await log.flush();
    failTmp = true;
    history.add('alice', decision(30));
    history.seal('alice');
    await log.flush(); // over compactMinBytes: a snapshot is tried, and fails
    expect(failures).toEqual([join(dir, 'decisions.log.tmp')]);
    await log.close();
    expect(await readdir(dir)).toEqual(['decisions.log']);
    const again = await FileDecisionLog.open(dir);
    // All 31: the decision buffered when the snapshot was taken went to the old log after the snapshot failed.
    expect(again.restored().get('alice')).toEqual(Array.from({ length: 31 }, (_, i) => packed(i)));
    await again.close();
  });

  it('compacts again only once the file is twice the last snapshot (long user ids make a snapshot large)', async () => {
    const user = 'ü'.repeat(128); // 256 bytes of UTF-8 per decision on disk, far more than its share in memory
    const history = new DecisionHistory(1_000_000, 100, (u, p) => log.add(u, p));
    const log = await FileDecisionLog.open(dir, { compactMinBytes: 1024 });
    log.snapshotFrom({ entries: () => history.packedEntries() });
    for (let i = 0; i < 60; i++) {
      history.add(user, decision(i));
      history.seal(user);
      await log.flush();
    }
    await log.close();
    // ~16 KiB written in all: the threshold doubles with each snapshot (1, 2, 4, 8, 16 KiB), against a rewrite at
    // nearly every flush if it followed the history's size in memory.
    expect(log.stats.compactions).toBeGreaterThan(0);
    expect(log.stats.compactions).toBeLessThanOrEqual(8);
  });

  it('compacts an empty history into an empty log', async () => {
    const history = new DecisionHistory(1_000_000, 100);
    const failures: string[] = [];
    const log = await FileDecisionLog.open(dir, { compactMinBytes: 100, onWriteFailure: (f) => failures.push(f.path) });
    log.snapshotFrom({ entries: () => history.packedEntries() });
    for (let i = 0; i < 20; i++) log.add('gone', packed(i)); // users the history no longer holds
    await log.flush();
    log.add('gone', packed(20));
    await log.flush();
    await log.close();
    expect(failures).toEqual([]);
    const again = await FileDecisionLog.open(dir);
    expect(again.restored().size).toBe(0);
    await again.close();
  });

  it('a damaged record in the middle costs that record (one flush, at most 256 decisions); the ones after it are kept', async () => {
    const log = await FileDecisionLog.open(dir);
    for (let i = 0; i < 300; i++) log.add('alice', packed(i)); // two records: 256 + 44
    await log.flush();
    log.add('alice', packed(300));
    await log.close();
    const path = join(dir, 'decisions.log');
    const bytes = await readFile(path);
    bytes[40] ^= 0xff; // inside the first record's body
    await writeFile(path, bytes);
    const reports: { damage: number; records: number }[] = [];
    const again = await FileDecisionLog.open(dir, { onDamage: (_f, r) => reports.push({ damage: r.damage.length, records: r.records }) });
    expect(reports).toEqual([{ damage: 1, records: 2 }]);
    expect(again.restored().get('alice')).toEqual(Array.from({ length: 45 }, (_, i) => packed(256 + i)));
    await again.close();
  });

  it('a torn tail is reported and cut; the records before it are kept', async () => {
    const log = await FileDecisionLog.open(dir);
    log.add('alice', packed(1));
    await log.close();
    await appendFile(join(dir, 'decisions.log'), Buffer.from([0x40, 0, 0, 0, 1, 2]));
    const damaged: number[] = [];
    const again = await FileDecisionLog.open(dir, { onDamage: (_file, report) => damaged.push(report.tornTailBytes) });
    expect(damaged).toEqual([6]);
    expect(again.restored().get('alice')).toEqual([packed(1)]);
    await again.close();
  });

  it('a compaction cut short (its temp file left behind) is discarded at open', async () => {
    const log = await FileDecisionLog.open(dir);
    log.add('alice', packed(1));
    await log.close();
    await appendFile(join(dir, 'decisions.log.tmp'), 'half a snapshot');
    const again = await FileDecisionLog.open(dir);
    expect(again.restored().get('alice')).toEqual([packed(1)]);
    expect(await readdir(dir)).toEqual(['decisions.log']);
    await again.close();
  });
});

describe('DecisionHistory with a sink and restore', () => {
  it('hands each decision to the sink once, when it is packed', () => {
    const sunk: [string, string][] = [];
    const h = new DecisionHistory(1_000_000, 100, (u, p) => sunk.push([u, p]));
    const open: Decision = { ...decision(1), targets: [{ device: 'phone', via: 'mobile' }] };
    h.add('alice', open);
    h.seal('alice');
    expect(sunk).toEqual([]); // its target has no outcome yet
    open.targets[0].outcome = 'acked';
    h.seal('alice');
    h.seal('alice');
    expect(sunk).toEqual([['alice', packDecision(open)]]);
    h.add('bob', { ...decision(2), targets: [{ device: 'pc', via: 'pc' }] });
    h.sealAll(); // stopping: what is open is written as it stands
    expect(sunk.map(([u]) => u)).toEqual(['alice', 'bob']);
  });

  it('restores by `at`, stably, the newest per user only, users ordered by their newest decision', () => {
    const h = new DecisionHistory(1_000_000, 3);
    // Packed out of order (a delivery acked late packs after a later one); a stray string is skipped.
    h.restore([
      ['alice', [packed(5), packed(1), packed(4), packed(2), 'x', packed(3)]],
      ['bob', [packed(9)]],
    ]);
    expect(h.newest('alice', 10).map((d) => d.at - AT)).toEqual([5, 4, 3]);
    expect([...h.packedEntries()].map(([u, p]) => [u, p.map((s) => packedAt(s) - AT)])).toEqual([['alice', [3, 4, 5]], ['bob', [9]]]);
    // Adding after a restore continues the ring: the oldest restored entry goes first.
    h.add('alice', decision(6));
    expect(h.newest('alice', 10).map((d) => d.at - AT)).toEqual([6, 5, 4]);
  });

  it('keeps the memory bound on restore: the users with the oldest decisions are dropped first', () => {
    const users = Array.from({ length: 50 }, (_, u) => [`u${u}`, Array.from({ length: 20 }, (_, i) => packed(u * 100 + i))] as [string, string[]]);
    const h = new DecisionHistory(10_000, 100);
    h.restore(users.reverse());
    expect(h.stats.bytes).toBeLessThanOrEqual(10_000);
    expect(h.stats.users).toBeGreaterThan(0);
    expect(h.newest('u49', 1)).toHaveLength(1);
    expect(h.newest('u0', 1)).toEqual([]);
  });

  it('hands decisions packed together to the sink oldest first, so those of one millisecond keep their order', () => {
    const sunk: string[] = [];
    const h = new DecisionHistory(1_000_000, 100, (_u, p) => sunk.push(p));
    for (const id of ['m1', 'm2', 'm3']) h.add('alice', { ...decision(7, id), targets: [{ device: 'phone', via: 'mobile' }] });
    h.sealAll();
    const again = new DecisionHistory(1_000_000, 100);
    again.restore([['alice', sunk]]);
    expect(again.newest('alice', 3).map((d) => d.id)).toEqual(['m3', 'm2', 'm1']);
    expect(again.newest('alice', 3)).toEqual(h.newest('alice', 3));
  });

  it('accounts a restored history as the same history built by add and seal', () => {
    const built = new DecisionHistory(1_000_000, 100);
    for (let i = 0; i < 150; i++) {
      built.add(i % 3 === 0 ? 'alice' : 'bob', decision(i));
      built.seal(i % 3 === 0 ? 'alice' : 'bob');
    }
    const restored = new DecisionHistory(1_000_000, 100);
    restored.restore(built.packedEntries());
    expect(restored.stats).toEqual(built.stats);
  });

  it('merge puts a previous owner\'s decisions in front, leaves out the ones held, keeps the newest per user', () => {
    const h = new DecisionHistory(1_000_000, 5);
    h.add('alice', decision(10));
    h.add('alice', { ...decision(11), targets: [{ device: 'phone', via: 'mobile' }] }); // still open
    h.seal('alice');
    h.merge('alice', [packed(3), packed(1), packed(2), packed(10), packed(4)]); // packed(10): already held here
    expect(h.newest('alice', 10).map((d) => d.at - AT)).toEqual([11, 10, 4, 3, 2]);
    // The bytes are those of the same history built in one go (the open one counts as open).
    const same = new DecisionHistory(1_000_000, 5);
    same.restore([['alice', [packed(2), packed(3), packed(4), packed(10)]]]);
    same.add('alice', { ...decision(11), targets: [{ device: 'phone', via: 'mobile' }] });
    expect(h.stats).toEqual(same.stats);
    // A user with no history here gets the saved one as it was.
    h.merge('bob', [packed(7)]);
    expect(h.newest('bob', 5).map((d) => d.at - AT)).toEqual([7]);
  });

  it('packedOf packs the open decisions of the users asked for and hands out theirs only', () => {
    const sunk: string[] = [];
    const h = new DecisionHistory(1_000_000, 100, (u) => sunk.push(u));
    h.add('alice', { ...decision(1), targets: [{ device: 'phone', via: 'mobile' }] });
    h.add('bob', decision(2));
    h.seal('bob');
    const out = h.packedOf((u) => u === 'alice');
    expect(out.map(([u, p]) => [u, p.length])).toEqual([['alice', 1]]);
    expect(sunk).toEqual(['bob', 'alice']);
  });

  it('packedAt reads the instant of a packed decision', () => {
    expect(packedAt(packDecision({ ...decision(0), at: 2 ** 47 + 12345 }))).toBe(2 ** 47 + 12345);
    expect(packedAt('short')).toBeNaN();
  });
});
