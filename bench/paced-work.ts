import { decide } from '../actors/decide.js';
import type { ChatMessage } from '../protocol/index.js';
import { realisticState } from './decide-ceiling.js';

/**
 * What this machine does to the same work done in small bursts (context for `embedded_p99_ms_at_10k`). One unit is a
 * message's worth of routing-shaped JavaScript with no I/O: decide() on the ceiling's state, the `message` frame
 * written as JSON, an ack frame parsed. It is timed back to back (hot), then in bursts of `perTick` units, one burst
 * per 1 ms timer tick (10 per tick is what 10,000 msgs/s paced in 1 ms steps hands the node), timing only the units.
 * The factor is burst over hot: the extra cost per unit that comes from the code and data a burst finds gone from
 * the CPU's caches and predictors after a millisecond of other work (the event loop, the kernel, other processes).
 * A whole node at 10k msgs/s pays it on every stage of its path, and so does a bare relay.
 */

export interface PacedWorkResult {
  hotNsPerUnit: number;
  /** ns per unit in bursts of `perTick` per 1 ms tick, by `perTick`. */
  pacedNsPerUnit: Map<number, number>;
}

function makeUnit(): () => number {
  const now = Date.now();
  const state = realisticState(now);
  const opts = { presenceTtlMs: 90_000 };
  const msgs: ChatMessage[] = Array.from({ length: 1024 }, (_, i) => ({ id: `m-${i}`, to: 'u1', from: 'alice', text: 'hello', data: { t: String(i) }, acceptedAt: now }));
  const acks = msgs.map((m) => `{"type":"ack","id":"${m.id}"}`);
  let i = 0;
  return () => {
    const m = msgs[i++ & 1023];
    const r = decide(state, m, now, opts);
    const frame = JSON.stringify({ type: 'message', id: m.id, from: m.from, text: m.text, data: m.data, ts: m.acceptedAt });
    const ack = JSON.parse(acks[i & 1023]) as { id: string };
    return r.commands.length + frame.length + ack.id.length;
  };
}

/** Hot, then `ticks` timer ticks of each burst size in `perTick`; ~`ticks` ms per burst size. */
export async function pacedWork(perTick: number[] = [1, 10], ticks = 2000): Promise<PacedWorkResult> {
  const unit = makeUnit();
  let sink = 0;
  for (let k = 0; k < 200_000; k++) sink += unit(); // warm-up: optimised code
  const n = 200_000;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) sink += unit();
  const hotNsPerUnit = Number(process.hrtime.bigint() - t0) / n;
  const pacedNsPerUnit = new Map<number, number>();
  for (const burst of perTick) {
    let spent = 0n;
    for (let t = 0; t < ticks; t++) {
      await new Promise((r) => setTimeout(r, 1));
      const s = process.hrtime.bigint();
      for (let k = 0; k < burst; k++) sink += unit();
      spent += process.hrtime.bigint() - s;
    }
    pacedNsPerUnit.set(burst, Number(spent) / (ticks * burst));
  }
  if (sink === 0) throw new Error('paced work: the unit did nothing');
  return { hotNsPerUnit, pacedNsPerUnit };
}
