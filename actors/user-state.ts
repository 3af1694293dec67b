import type { DeviceRecord } from '../store/types.js';
import type { InactiveReason, MobileOs, UserPolicy } from '../protocol/index.js';

/**
 * The compact per-user state the routing decision reads (PROTOCOL.md section 4). It is what stays resident
 * while a user has live sessions, so it is small on purpose: arrays allocated on first use (no Map for the
 * usual 1-3 entries), strings taken by reference from the bus messages, node ids interned by the directory.
 * A user with one PC and one phone measures in test/actors-memory.test.ts.
 */

/** One connected PC session (claim 4: the PC reports active or inactive with a reason). */
export interface PcSession {
  sessionId: string;
  device: string;
  /** Gateway node holding the socket. */
  node: string;
  presence: 'active' | 'inactive';
  reason?: InactiveReason;
  /** Epoch ms of the last frame heard from this session (presence, ping, ack); older than the TTL = stale. */
  lastSeen: number;
  /** A bot or bridge (token claim `"bot": true`): never makes the PC state active (issue 10 part 5). */
  bot?: boolean;
  /** Epoch ms the gateway accepted the connection: of two sessions of one device the newer one wins. */
  openedAt?: number;
}

/** The live app session of a mobile device; `foreground` false counts as offline (section 2). */
export interface MobileSession {
  sessionId: string;
  node: string;
  foreground: boolean;
  /** Epoch ms the gateway accepted the connection: of two sessions of one device the newer one wins. */
  openedAt?: number;
}

/** A mobile device: registry record (token) merged with its live session, if any (claims 1, 5, 6). */
export interface MobileDevice {
  device: string;
  os: MobileOs;
  token?: string;
  app?: string;
  session?: MobileSession;
}

// Fields are cleared by assigning undefined, never `delete`: deleting turns a V8 object into a slow, larger dictionary.
export interface UserState {
  pcs?: PcSession[];
  mobiles?: MobileDevice[];
  /** The user's delivery policy (section 4); undefined = the default (`when_away`). */
  policy?: UserPolicy;
}

/** An empty state; every field present from the start so V8 gives every state one small hidden class. */
export function newUserState(): UserState {
  return { pcs: undefined, mobiles: undefined, policy: undefined };
}

/** Every optional field present (as undefined) so all devices share one shape with in-object fields only. */
export function newMobile(device: string, os: MobileOs, token?: string, app?: string): MobileDevice {
  return { device, os, token, app, session: undefined };
}

/** Claim 4: the state is what the PC reports, so a PC that has reported nothing yet is not active (reason `unreported` until it does). */
export function newPcSession(sessionId: string, device: string, node: string, lastSeen: number, bot = false): PcSession {
  return { sessionId, device, node, presence: 'inactive', reason: undefined, lastSeen, bot };
}

function mobileFromRecord(r: DeviceRecord): MobileDevice {
  return newMobile(r.device, r.os, r.token, r.app);
}

/**
 * Section 2 ("a second connection of the same user and device replaces the first"), made safe against reordering:
 * true when the device already has another session that opened later than `openedAt`. That happens when a gateway
 * that was frozen or cut off resends a session its client has long left for a newer one on another gateway.
 */
export function isOlderThanCurrent(s: UserState, kind: 'pc' | 'mobile', device: string, sessionId: string, openedAt: number | undefined): boolean {
  if (openedAt === undefined) return false;
  const current = kind === 'pc' ? s.pcs?.find((p) => p.device === device) : findMobile(s, device)?.session;
  return current !== undefined && current.sessionId !== sessionId && current.openedAt !== undefined && openedAt < current.openedAt;
}

/** True while any session is connected: such a state is kept across passivation (the registry cannot rebuild it). */
export function hasLiveSessions(s: UserState): boolean {
  return (s.pcs !== undefined && s.pcs.length > 0) || (s.mobiles?.some((m) => m.session !== undefined) ?? false);
}

export function findPc(s: UserState, sessionId: string): PcSession | undefined {
  return s.pcs?.find((p) => p.sessionId === sessionId);
}

export function findMobile(s: UserState, device: string): MobileDevice | undefined {
  return s.mobiles?.find((m) => m.device === device);
}

/** Adds or replaces a PC session; returns the session it displaced (same device, other id) so it can be closed (4409). */
export function openPcSession(s: UserState, pc: PcSession): PcSession | undefined {
  const pcs = s.pcs;
  if (pcs === undefined) {
    s.pcs = [pc]; // a literal has room for exactly one; push() on [] would reserve 17 slots
    return undefined;
  }
  const i = pcs.findIndex((p) => p.device === pc.device);
  if (i < 0) {
    pcs.push(pc);
    return undefined;
  }
  const old = pcs[i];
  pcs[i] = pc;
  return old.sessionId === pc.sessionId ? undefined : old;
}

/** Attaches a live session to a mobile device (creating the device if the registry does not know it yet). */
export function openMobileSession(s: UserState, device: string, os: MobileOs | undefined, session: MobileSession): MobileSession | undefined {
  let m = findMobile(s, device);
  if (!m) {
    // A session-only device: the JWT names its OS; a missing one only matters for GET, never for a push.
    m = newMobile(device, os ?? 'android');
    addMobile(s, m);
  } else if (os !== undefined) {
    m.os = os;
  }
  const old = m.session;
  m.session = session;
  return old && old.sessionId !== session.sessionId ? old : undefined;
}

/**
 * Section 2: "a second connection of the same user and device replaces the first", whatever kind either claims: a
 * session of `device` of the other kind than `kind` is taken out of the state and returned (the caller closes it
 * with 4409 and times out what it was sent), else undefined.
 */
export function takeOtherKindSession(s: UserState, kind: 'pc' | 'mobile', device: string): { sessionId: string; node: string } | undefined {
  if (kind === 'pc') {
    const m = findMobile(s, device);
    const old = m?.session;
    if (old === undefined) return undefined;
    m!.session = undefined;
    return old;
  }
  const pc = s.pcs?.find((p) => p.device === device);
  if (pc === undefined) return undefined;
  closeSession(s, device, pc.sessionId);
  return pc;
}

/** Removes a session only when the id matches: a close that arrives after a replacement must not drop the new one. */
export function closeSession(s: UserState, device: string, sessionId: string): boolean {
  if (s.pcs) {
    const i = s.pcs.findIndex((p) => p.device === device && p.sessionId === sessionId);
    if (i >= 0) {
      s.pcs.splice(i, 1);
      if (s.pcs.length === 0) s.pcs = undefined;
      return true;
    }
  }
  const m = findMobile(s, device);
  if (m?.session?.sessionId === sessionId) {
    m.session = undefined;
    return true;
  }
  return false;
}

export function putDevice(s: UserState, device: string, os: MobileOs, token: string, app: string | undefined): void {
  const m = findMobile(s, device);
  if (!m) {
    addMobile(s, newMobile(device, os, token, app));
    return;
  }
  m.os = os;
  m.token = token;
  if (app === undefined) m.app = undefined;
  else m.app = app;
}

/** Forgets the registration; a still-connected app keeps its direct path until its session closes. */
export function deleteDevice(s: UserState, device: string): void {
  const m = findMobile(s, device);
  if (!m || !s.mobiles) return;
  if (m.session) {
    m.token = undefined;
    m.app = undefined;
    return;
  }
  s.mobiles.splice(s.mobiles.indexOf(m), 1);
  if (s.mobiles.length === 0) s.mobiles = undefined;
}

/** A vendor called the token dead, or the registry removed it: clear it only if it is still the same token (a newer one survives). */
export function clearDeadToken(s: UserState, device: string, token: string): void {
  const m = findMobile(s, device);
  if (m?.token === token) m.token = undefined;
}

/** Adds what the registry knows to a state that may already hold sessions (a load retried after a failure). */
export function mergeRegistry(s: UserState, records: readonly DeviceRecord[]): void {
  for (const r of records) {
    const m = findMobile(s, r.device);
    if (!m) addMobile(s, mobileFromRecord(r));
    else if (m.token === undefined && r.token !== undefined) {
      m.token = r.token;
      m.app = r.app;
    }
  }
}

function addMobile(s: UserState, m: MobileDevice): void {
  if (s.mobiles === undefined) s.mobiles = [m]; // exact capacity, as for pcs
  else s.mobiles.push(m);
}
