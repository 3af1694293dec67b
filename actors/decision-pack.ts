import type { Decision, DecisionTarget } from '../protocol/index.js';

/**
 * One decision as a compact one-byte string (issue 10 part 4): a JS string of latin1 "bytes" costs its length plus
 * a ~16-byte header, against ~200 bytes for the object form with its targets array. Known names (routes, reasons,
 * vias, outcomes) are one byte; a name not in the tables (a newer code) is kept as text after the escape byte.
 *
 * Layout: at (u48 LE, epoch ms) | route | reason | id | target count (u8) | per target: device | via | outcome |
 * flags (bit 0 silent, bit 1 detail follows) | [detail]. Text: length byte (255 = u16 LE follows) + UTF-8 bytes.
 */

const ROUTES = ['pc', 'mobile', 'pc_fallback', 'undeliverable', 'held'];
const REASONS = ['pc_active', 'idle', 'screen_locked', 'client_locked', 'stale', 'no_pc', 'ack_timeout', 'policy_always', 'policy_never', 'quiet_hours'];
const VIAS = ['pc', 'mobile', 'apns', 'fcm', 'hms', 'webpush'];
/** Index 0 = no outcome yet. */
const OUTCOMES = ['', 'acked', 'ack_timeout', 'ok', 'dead_token', 'failed', 'cancelled'];
const ESCAPE = 255;
/** A vendor's failure reason is kept to this many characters. */
export const MAX_DETAIL_CHARS = 120;
/** Targets kept per decision (a user with more devices keeps the first 255). */
const MAX_TARGETS = 255;

let scratch = Buffer.allocUnsafe(4096);

class Writer {
  n = 0;

  ensure(extra: number): void {
    if (this.n + extra <= scratch.length) return;
    const next = Buffer.allocUnsafe(Math.max(scratch.length * 2, this.n + extra));
    scratch.copy(next, 0, 0, this.n);
    scratch = next;
  }

  byte(v: number): void {
    this.ensure(1);
    scratch[this.n++] = v;
  }

  text(s: string): void {
    // Most ids and device names are ASCII: their UTF-8 bytes are their char codes, copied here without the two calls
    // into C++ (`byteLength`, `write`) that the general path makes; ~0.25 us of the ~0.55 us a pack took (issue 13).
    if (s.length < 255) {
      this.ensure(s.length + 1);
      let n = this.n + 1;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        scratch[n++] = c;
      }
      if (i === s.length) {
        scratch[this.n] = s.length;
        this.n = n;
        return;
      }
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len + 3);
    if (len < 255) scratch[this.n++] = len;
    else {
      scratch[this.n++] = 255;
      scratch.writeUInt16LE(Math.min(len, 0xffff), this.n);
      this.n += 2;
    }
    this.n += scratch.write(s, this.n, Math.min(len, 0xffff), 'utf8');
  }

  code(table: readonly string[], v: string): void {
    const i = table.indexOf(v);
    if (i >= 0) return this.byte(i);
    this.byte(ESCAPE);
    this.text(v);
  }
}

/** The one writer: packing is synchronous, so every pack can start it over (`n = 0`) instead of allocating one. */
const writer = new Writer();

class Reader {
  i = 0;
  constructor(readonly b: Buffer) {}

  byte(): number {
    return this.b[this.i++];
  }

  text(): string {
    let len = this.b[this.i++];
    if (len === 255) {
      len = this.b.readUInt16LE(this.i);
      this.i += 2;
    }
    const s = this.b.toString('utf8', this.i, this.i + len);
    this.i += len;
    return s;
  }

  code(table: readonly string[]): string {
    const c = this.byte();
    return c === ESCAPE ? this.text() : table[c];
  }
}

export function packDecision(d: Decision): string {
  const w = writer;
  w.n = 0;
  w.ensure(8);
  // u48 LE by hand, as `writeUIntLE` would write it, without its argument checks (the pack runs once per message);
  // a fraction is cut, a negative or NaN instant is 0, one past 2^48 - 1 is 2^48 - 1.
  const at = Math.max(0, Math.min(Math.floor(d.at), 2 ** 48 - 1));
  const low = at % 2 ** 32;
  const high = (at - low) / 2 ** 32;
  scratch[0] = low & 0xff;
  scratch[1] = (low >>> 8) & 0xff;
  scratch[2] = (low >>> 16) & 0xff;
  scratch[3] = low >>> 24;
  scratch[4] = high & 0xff;
  scratch[5] = (high >>> 8) & 0xff;
  w.n = 6;
  w.code(ROUTES, d.route);
  w.code(REASONS, d.reason);
  w.text(d.id);
  const n = Math.min(d.targets.length, MAX_TARGETS);
  w.byte(n);
  for (let k = 0; k < n; k++) {
    const t = d.targets[k];
    w.text(t.device);
    w.code(VIAS, t.via);
    w.code(OUTCOMES, t.outcome ?? '');
    const detail = t.detail === undefined ? undefined : t.detail.slice(0, MAX_DETAIL_CHARS);
    w.byte((t.silent ? 1 : 0) | (detail !== undefined ? 2 : 0));
    if (detail !== undefined) w.text(detail);
  }
  return scratch.toString('latin1', 0, w.n);
}

export function unpackDecision(s: string): Decision {
  const r = new Reader(Buffer.from(s, 'latin1'));
  const at = r.b.readUIntLE(0, 6);
  r.i = 6;
  const route = r.code(ROUTES) as Decision['route'];
  const reason = r.code(REASONS) as Decision['reason'];
  const id = r.text();
  const n = r.byte();
  const targets: DecisionTarget[] = [];
  for (let k = 0; k < n; k++) {
    const t: DecisionTarget = { device: r.text(), via: r.code(VIAS) as DecisionTarget['via'] };
    const outcome = r.code(OUTCOMES);
    if (outcome !== '') t.outcome = outcome as DecisionTarget['outcome'];
    const flags = r.byte();
    if (flags & 1) t.silent = true;
    if (flags & 2) t.detail = r.text();
    targets.push(t);
  }
  return { id, route, reason, targets, at };
}

/**
 * The `at` (epoch ms) of a packed decision, read from its first six chars (u48 LE) without unpacking the rest: what
 * a restored history is ordered by (`DecisionHistory.restore`). NaN for a string too short to be a packed decision.
 */
export function packedAt(s: string): number {
  if (s.length < 7) return NaN;
  let at = 0;
  for (let k = 5; k >= 0; k--) at = at * 256 + (s.charCodeAt(k) & 0xff);
  return at;
}
