import type { ReadState } from './types.js';

/**
 * The read state's rules in one place (PROTOCOL.md section 4, read sync), applied by the user actor and again by
 * the file store when it replays its log, so both end in the same state. Pure functions over a `ReadState`.
 */

/** Unread ids kept per user; past this the oldest is forgotten, so the badge saturates here. */
export const MAX_UNREAD_IDS = 1000;
/** Recently read ids kept per user: a read that arrives up to this many reads before its delivery still counts. */
export const MAX_READ_IDS_REMEMBERED = 500;

export function emptyReadState(): ReadState {
  return { unread: [], read: [] };
}

/** A message was delivered: it counts as unread unless it was read already. Returns false when nothing changed. */
export function markDelivered(s: ReadState, id: string): boolean {
  if (s.read.includes(id) || s.unread.includes(id)) return false;
  s.unread.push(id);
  if (s.unread.length > MAX_UNREAD_IDS) s.unread.splice(0, s.unread.length - MAX_UNREAD_IDS);
  return true;
}

/** Messages were read: they leave `unread` (never below 0) and are remembered in case their delivery comes later. */
export function markRead(s: ReadState, ids: readonly string[]): void {
  const gone = new Set(ids);
  if (s.unread.length > 0) s.unread = s.unread.filter((id) => !gone.has(id));
  for (const id of gone) if (!s.read.includes(id)) s.read.push(id);
  if (s.read.length > MAX_READ_IDS_REMEMBERED) s.read.splice(0, s.read.length - MAX_READ_IDS_REMEMBERED);
}

/** The badge: messages delivered to the user and not read. */
export function unreadCount(s: ReadState): number {
  return s.unread.length;
}
