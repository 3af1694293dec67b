import { BoundedIdSet } from './bounded-id-set.js';
import type { ReadChange, ReadState, ReadStateRecord } from './types.js';

/**
 * The read state's rules in one place (PROTOCOL.md section 4, read sync), applied by the user actor and again by
 * the file store when it replays its log, so both end in the same state. Pure functions over a `ReadState`; each
 * change is O(1) per id, amortized (`BoundedIdSet`), whatever the number of ids kept.
 */

/** Unread ids kept per user; past this the oldest is forgotten, so the badge saturates here. */
export const MAX_UNREAD_IDS = 1000;
/** Recently read ids kept per user: a read that arrives up to this many reads before its delivery still counts. */
export const MAX_READ_IDS_REMEMBERED = 500;

export function emptyReadState(): ReadState {
  return { unread: new BoundedIdSet(MAX_UNREAD_IDS), read: new BoundedIdSet(MAX_READ_IDS_REMEMBERED) };
}

function bounded(unread: Iterable<string>, read: Iterable<string>): ReadState {
  return { unread: new BoundedIdSet(MAX_UNREAD_IDS, unread), read: new BoundedIdSet(MAX_READ_IDS_REMEMBERED, read) };
}

/** A read state from its stored form; the bounds are applied again (a record written with larger ones). */
export function fromRecord(r: ReadStateRecord): ReadState {
  return bounded(r.unread, r.read);
}

/** The stored form of a read state: fresh arrays, oldest first. */
export function toRecord(s: ReadState): ReadStateRecord {
  return { unread: s.unread.toArray(), read: s.read.toArray() };
}

/** An independent copy (a store keeps its own, the actor changes its own). */
export function copyReadState(s: ReadState): ReadState {
  return bounded(s.unread, s.read);
}

/**
 * A message was delivered: it counts as unread unless it was read already (past MAX_UNREAD_IDS the oldest unread is
 * forgotten). Returns false when nothing changed.
 */
export function markDelivered(s: ReadState, id: string): boolean {
  if (s.read.has(id)) return false;
  return s.unread.add(id);
}

/**
 * A message counted as delivered reached no device in the end (its pushes failed; it is held instead): it leaves
 * `unread` (section 4: unread counts messages delivered to the user). Returns false when it was not counted.
 */
export function unmarkDelivered(s: ReadState, id: string): boolean {
  return s.unread.delete(id);
}

/** Messages were read: they leave `unread` (never below 0) and are remembered in case their delivery comes later. */
export function markRead(s: ReadState, ids: readonly string[]): void {
  for (const id of ids) s.unread.delete(id);
  s.read.addAll(ids); // an id read again keeps its place; the bound applies once all are in
}

/** The badge: messages delivered to the user and not read. */
export function unreadCount(s: ReadState): number {
  return s.unread.size;
}

/** Whether the state holds nothing (a store forgets such a user). */
export function isEmptyReadState(s: ReadState): boolean {
  return s.unread.size === 0 && s.read.size === 0;
}

/**
 * Applies one change as the actor made it (`markDelivered`, `unmarkDelivered` or `markRead`): a store that logs
 * changes rather than whole states replays them with this, and ends in the actor's state.
 */
export function applyChange(s: ReadState, change: ReadChange): void {
  if ('delivered' in change) markDelivered(s, change.delivered);
  else if ('undelivered' in change) unmarkDelivered(s, change.undelivered);
  else markRead(s, change.read);
}

/** How many ids a change carries (a `read` up to 500, a delivery mark one). */
export function idsInChange(change: ReadChange): number {
  return 'read' in change ? change.read.length : 1;
}
