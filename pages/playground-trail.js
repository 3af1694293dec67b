// Switchboard playground: the node's routing decisions in words, and the stand-in notification tray's inference.
// Pure functions over a decision (GET /v1/users/{user}/decisions) and what the page knows about its own panes, so a
// unit test can walk every route without a browser. Types: playground-trail.d.ts.

export const VENDOR_OF = { ios: 'apns', android: 'fcm', harmony: 'hms', web: 'webpush' };
export const VENDOR_NAME = { apns: 'APNs', fcm: 'FCM', hms: 'Huawei Push Kit', webpush: 'Web Push' };
export const REASON_WORDS = { idle: 'idle', screen_locked: 'screen locked', client_locked: 'client locked' };

/** "HH:MM:SS" local time of an epoch-ms instant. */
export const clock = (t) => new Date(t).toTimeString().slice(0, 8);

/**
 * The vendor the node would have pushed with, had it been configured (issue 12's stand-in tray), or undefined.
 * PROTOCOL section 4: "A device whose vendor has no credentials configured is not reachable by push", so such a
 * decision names no vendor target: its route is `pc_fallback`, `held` or `undeliverable`. The page infers the push
 * from its own phone pane: a push token stored, not in the foreground when the node decided, and the phone OS's
 * vendor absent from the node's configured vendors (`GET /playground/api/info`).
 */
export function standInVendor(d, ctx) {
  if (!['pc_fallback', 'held', 'undeliverable'].includes(d.route)) return undefined;
  if (d.reason === 'pc_active' || d.reason === 'policy_never') return undefined;
  if (d.targets.some((t) => t.via !== 'pc')) return undefined;
  const vendor = VENDOR_OF[ctx.phoneOs];
  if (!vendor || ctx.vendors[vendor] || !ctx.phoneRegistered) return undefined;
  const mode = ctx.phoneModeAt(d.at);
  return mode === 'offline' || mode === 'background' ? vendor : undefined;
}

function phoneWords(mode) {
  return mode === 'background' ? 'phone in the background' : 'phone offline';
}

function outcomeWords(t, d, ctx) {
  const acked = ctx.ackedAt(t.device, d.id);
  switch (t.outcome) {
    case 'acked': return acked ? `acked in ${Math.max(0, acked - d.at)} ms` : 'acked';
    case 'ok': return 'accepted by the vendor';
    case 'ack_timeout': return 'not acked in time';
    case 'failed': return `not sent (${t.detail ?? 'failed'})`;
    case 'dead_token': return 'the vendor says the token is dead';
    case 'cancelled': return `cancelled (${t.detail ?? ''})`;
    default: return 'waiting for the outcome';
  }
}

function pcWords(d, ctx) {
  if (d.reason === 'pc_active') return 'PC active';
  if (d.reason === 'ack_timeout') return 'no ack in time, falling back';
  if (d.reason === 'no_pc') return 'no PC connected';
  if (d.reason === 'stale') return 'PC silent too long (stale)';
  if (d.reason === 'unreported') return 'PC connected, presence not reported yet';
  const since = ctx.pcSince(d.at, d.reason);
  return `PC ${REASON_WORDS[d.reason] ?? d.reason.replace(/_/g, ' ')}${since ? ` since ${clock(since)}` : ''}`;
}

/**
 * One decision in words, and the tray entry it implies:
 * `{ words: "PC screen locked since 10:42:01 → phone in foreground → delivered directly, acked in 3 ms",
 *    tray?: { vendor, configured } }`.
 * `ctx`: `{ vendors: {apns,fcm,hms,webpush: boolean}, phoneOs, phoneRegistered, phoneModeAt(at) -> "foreground" |
 * "background" | "offline" | undefined, pcSince(at, reason) -> epoch ms | undefined, ackedAt(device, id) -> epoch ms
 * | undefined }`. Routes (PROTOCOL section 4): `pc`, `mobile`, `pc_fallback`, `held`, `undeliverable`.
 */
export function explain(d, ctx) {
  const parts = [pcWords(d, ctx)];
  let tray;
  const standIn = standInVendor(d, ctx);
  if (standIn) {
    parts.push(phoneWords(ctx.phoneModeAt(d.at)), `${VENDOR_NAME[standIn]} not configured here`);
    tray = { vendor: standIn, configured: false };
  } else if (d.route === 'pc_fallback') {
    parts.push('no phone reachable');
  }
  for (const t of d.targets) {
    if (t.via === 'pc') parts.push(`delivered to the PC${d.route === 'pc_fallback' ? ' instead' : ''}, ${outcomeWords(t, d, ctx)}`);
    else if (t.via === 'mobile') parts.push('phone in foreground', `delivered directly, ${outcomeWords(t, d, ctx)}`);
    else {
      parts.push(phoneWords(ctx.phoneModeAt(d.at)), `${VENDOR_NAME[t.via] ?? t.via} push${t.silent ? ' (silent)' : ''}, ${outcomeWords(t, d, ctx)}`);
      tray = { vendor: t.via, configured: true, outcome: t.outcome };
    }
  }
  if (d.targets.length === 0) {
    if (d.route === 'held') parts.push(standIn ? 'held until the phone is back' : 'held until the user is reachable');
    else if (d.route === 'undeliverable') parts.push('nothing reachable: undeliverable');
    else parts.push('no target');
  }
  return { words: parts.join(' → '), tray };
}
