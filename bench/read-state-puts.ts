import { pathToFileURL } from 'node:url';
import { Packr } from 'msgpackr';
import { ReadStateWriter } from '../cluster/read-state-writer.js';
import { emptyReadState, markDelivered, markRead, toRecord } from '../store/read-state.js';
import type { ReadChange, ReadState } from '../store/types.js';

/**
 * What a delivery's unread mark costs the cluster's read-state writes (issue 13), `node dist/bench/read-state-puts.js`:
 * one busy user (a put in flight most of the time, as at max rate) gets `deliveries` messages through the
 * `ReadStateWriter` with the bucket's encoding (cluster/jetstream-held-store.ts). Two users: one at the cap (1,000
 * unread, 500 read: nobody reads, as in the cluster bench) and one who reads every turn's messages (a durable save
 * each turn; unread stays a few, 500 read). Two modes in the same run, alternated: `changes` (what the store does: the writer puts the
 * changes since the previous put, the whole state once the user is quiet) and the baseline `whole` (each put the
 * whole state, as before; the same writer, saves given without their change). Per delivery: the process's CPU for
 * the writer and the encoding (µs), bytes put, and puts. No NATS: the put is answered one event-loop turn later.
 */

const packr = new Packr({ useRecords: false });

/** Who gets the messages: `cap` never reads (1,000 unread), `reading` reads each turn's messages. */
export type PutsUser = 'cap' | 'reading';

/** Result of one run: per delivery. */
export interface PutsRun {
  mode: 'changes' | 'whole';
  user: PutsUser;
  cpuUsPerDelivery: number;
  bytesPerDelivery: number;
  putsPerDelivery: number;
}

/** A user state with `unread` unread ids and 500 read, ids like `u-123456` (the bench's ids are about this long). */
function startState(unread: number): ReadState {
  const s = emptyReadState();
  markRead(s, Array.from({ length: 500 }, (_, i) => `r-${100000 + i}`));
  for (let i = 0; i < unread; i++) markDelivered(s, `u-${100000 + i}`);
  return s;
}

/**
 * Runs `deliveries` marks for one user; every `perTurn` marks the event loop turns once (the answer to a put comes a
 * turn after it is sent, so marks made meanwhile coalesce as they do behind a put in flight).
 */
export async function runPuts(mode: 'changes' | 'whole', user: PutsUser, deliveries = 20_000, perTurn = 4): Promise<PutsRun> {
  let bytes = 0;
  let seq = 0;
  const put = async ({ state, changes, base }: { state: ReadState; changes?: readonly ReadChange[]; base?: number }): Promise<number> => {
    bytes += packr.pack(changes === undefined ? toRecord(state) : { base, changes }).length;
    await new Promise<void>((resolve) => setImmediate(resolve));
    return ++seq;
  };
  const writer = new ReadStateWriter(put, { delayMs: 0 });
  const s = startState(user === 'cap' ? 1000 : 0);
  const start = process.cpuUsage();
  let turn: string[] = [];
  for (let i = 0; i < deliveries; i++) {
    const id = `m-${200000 + i}`;
    markDelivered(s, id);
    void writer.save('u', s, false, mode === 'changes' ? { delivered: id } : undefined);
    turn.push(id);
    if (i % perTurn !== perTurn - 1) continue;
    if (user === 'reading') {
      markRead(s, turn);
      void writer.save('u', s, true, mode === 'changes' ? { read: turn } : undefined);
    }
    turn = [];
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await writer.settled();
  const cpu = process.cpuUsage(start);
  return { mode, user, cpuUsPerDelivery: (cpu.user + cpu.system) / deliveries, bytesPerDelivery: bytes / deliveries, putsPerDelivery: writer.puts / deliveries };
}

async function main(): Promise<void> {
  const rounds = 3;
  console.log(`read-state puts per delivery, one busy user, 4 deliveries per event-loop turn; mean of ${rounds} alternated runs each (Node ${process.version})\n`);
  console.log('| user | mode | CPU µs per delivery | bytes put per delivery | puts per delivery | CPU vs whole |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const user of ['cap', 'reading'] as const) {
    await runPuts('changes', user, 2000); // warm-up
    await runPuts('whole', user, 2000);
    const runs: Record<'changes' | 'whole', PutsRun[]> = { changes: [], whole: [] };
    for (let r = 0; r < rounds; r++) for (const mode of ['whole', 'changes'] as const) runs[mode].push(await runPuts(mode, user));
    const mean = (rs: PutsRun[], k: keyof Omit<PutsRun, 'mode' | 'user'>) => rs.reduce((a, x) => a + x[k], 0) / rs.length;
    const whole = mean(runs.whole, 'cpuUsPerDelivery');
    for (const mode of ['whole', 'changes'] as const) {
      const cpu = mean(runs[mode], 'cpuUsPerDelivery');
      console.log(`| ${user === 'cap' ? '1,000 unread, 500 read' : 'reads as it goes, 500 read'} | ${mode} | ${cpu.toFixed(2)} | ${mean(runs[mode], 'bytesPerDelivery').toFixed(0)} | ${mean(runs[mode], 'putsPerDelivery').toFixed(3)} | ${mode === 'whole' ? 'baseline' : `${(cpu / whole).toFixed(2)}x`} |`);
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
