import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { newPcSession, newUserState, openMobileSession, openPcSession, putDevice, type UserState } from '../actors/user-state.js';

/**
 * Heap bytes one resident user costs when kept across passivation (the directory's Map entry + compact state):
 * one PC session and one phone with its push token. Strings come from JSON.parse, as from a decoded bus message.
 */

setFlagsFromString('--expose-gc');
const gcOnce = runInNewContext('gc') as () => void;
const gc = (): void => {
  gcOnce();
  gcOnce();
};
const heapUsed = (): number => getHeapStatistics().used_heap_size;

function bytesPerUser(tokenChars: number, n = 50_000): { objects: number; strings: number } {
  const node = 'gw-node-1';
  const inputs = JSON.parse(JSON.stringify(Array.from({ length: n }, (_, i) => ({
    user: `user-${i}`, pc: `pc-${i}`, pcSession: `s${i}`.padEnd(21, 'x'), phone: `phone-${i}`,
    phoneSession: `m${i}`.padEnd(21, 'y'), token: `${i}`.padEnd(tokenChars, 'f'),
  })))) as { user: string; pc: string; pcSession: string; phone: string; phoneSession: string; token: string }[];
  // Reading every input once first: V8 frees parser leftovers on first access, which would otherwise skew the delta.
  let chars = 0;
  for (const x of inputs) chars += x.user.length + x.pc.length + x.pcSession.length + x.phone.length + x.phoneSession.length + x.token.length;
  expect(chars).toBeGreaterThan(0);
  const users = new Map<string, UserState>();
  gc();
  const before = heapUsed();
  for (const x of inputs) {
    const s = newUserState();
    putDevice(s, x.phone, 'ios', x.token, undefined);
    openPcSession(s, newPcSession(x.pcSession, x.pc, node, Date.now()));
    openMobileSession(s, x.phone, 'ios', { sessionId: x.phoneSession, node, foreground: true });
    users.set(x.user, s);
  }
  gc();
  const after = heapUsed();
  expect(users.size).toBe(n);
  // The input strings already existed before `before`: what is counted is the state and the map, not the ids.
  const stringBytes = inputs.reduce((sum, x) => sum + [x.user, x.pc, x.pcSession, x.phone, x.phoneSession, x.token].reduce((a, s) => a + 16 + Math.ceil(s.length / 8) * 8, 0), 0) / n;
  return { objects: Math.round((after - before) / n), strings: Math.round(stringBytes) };
}

describe('resident user memory', () => {
  it('one PC + one phone: objects (state + map entry) under 500 bytes; ids and token strings on top', () => {
    bytesPerUser(64, 2000); // warm-up: compiled code and inline caches are not per user
    const apns = bytesPerUser(64); // APNs: 64 hex characters
    const fcm = bytesPerUser(163); // FCM registration tokens are about 163 characters
    console.log(`heap bytes per resident user: objects ${apns.objects}, + strings ${apns.strings} (APNs token) / ${fcm.strings} (FCM token)`);
    expect(apns.objects).toBeLessThan(500);
  });
});
