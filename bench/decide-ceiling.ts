import { decide } from '../actors/decide.js';
import type { UserState } from '../actors/user-state.js';
import type { ChatMessage } from '../protocol/index.js';

/**
 * Section a, the ceiling: decide() alone on the state the issue names (PC inactive, phone foreground), so every
 * other row can be read as a fraction of what the routing rule itself would allow on one core.
 */

export interface CeilingResult {
  callsPerSec: number;
  nsPerCall: number;
  route: string;
}

export function realisticState(now: number): UserState {
  return {
    pcs: [{ sessionId: 's-pc', device: 'pc1', node: 'bench-node', presence: 'inactive', reason: 'screen_locked', lastSeen: now - 1000 }],
    mobiles: [{ device: 'phone1', os: 'android', token: 'fcm-token-0123456789', session: { sessionId: 's-ph', node: 'bench-node', foreground: true } }],
  };
}

export function decideCeiling(durationMs: number): CeilingResult {
  const now = Date.now();
  const state = realisticState(now);
  const opts = { presenceTtlMs: 90_000 };
  const msgs: ChatMessage[] = Array.from({ length: 1024 }, (_, i) => ({
    id: `m-${i}`, to: 'u1', from: 'alice', text: 'hello', data: { t: String(i) }, acceptedAt: now,
  }));
  let sink = 0;
  let route = '';
  // Warm-up so the timed loop measures optimised code.
  for (let i = 0; i < 200_000; i++) sink += decide(state, msgs[i & 1023], now, opts).commands.length;
  let calls = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(durationMs) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 10_000; i++) {
      const r = decide(state, msgs[i & 1023], now, opts);
      sink += r.commands.length;
      route = r.decision.route;
    }
    calls += 10_000;
    elapsed = process.hrtime.bigint() - start;
  }
  if (sink === 0 || route !== 'mobile') throw new Error(`decide() routed the realistic state to "${route}", expected "mobile"`);
  const secs = Number(elapsed) / 1e9;
  return { callsPerSec: calls / secs, nsPerCall: Number(elapsed) / calls, route };
}
