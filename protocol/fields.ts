import { SwitchboardError } from './errors.js';

/** Field checks shared by every decoder. Each throws `SwitchboardError('invalid_request')` naming the field. */

const PRINTABLE = /^[^\p{C}]+$/u;

/** Longest user id, device id and message id (PROTOCOL.md section 2: 1-128 printable characters). */
export const MAX_ID_CHARS = 128;

export type Json = Record<string, unknown>;

export function invalid(field: string, must: string): SwitchboardError {
  return new SwitchboardError('invalid_request', `${field} must be ${must}`);
}

/** `invalid_field` (section 3): the field is well-typed but holds a value the contract refuses. */
export function invalidField(field: string, must: string): SwitchboardError {
  return new SwitchboardError('invalid_field', `${field} must be ${must}`);
}

/** ES2024's String.prototype.isWellFormed: in V8 since 11.1 (every Node `engines` allows), not in the ES2023 lib types. */
type WellFormedCheck = { isWellFormed(): boolean };

/** True when `s` has no lone surrogate, i.e. it can be encoded as UTF-8 (String.prototype.isWellFormed). */
export function isWellFormed(s: string): boolean {
  return (s as unknown as WellFormedCheck).isWellFormed();
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** 1-128 printable characters (user ids and device ids, section 2's claims rule; `from`, app names). */
export function id(obj: Json, field: string): string {
  const v = obj[field];
  if (!isId(v)) throw invalid(field, `a string of 1-${MAX_ID_CHARS} printable characters`);
  return v;
}

export function isId(v: unknown): v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS * 2) return false;
  if (isPrintableAscii(v)) return v.length <= MAX_ID_CHARS;
  let n = 0;
  for (const _ of v) if (++n > MAX_ID_CHARS) return false;
  return PRINTABLE.test(v);
}

/**
 * A message id (section 3: `"id":"<unique, 1-128 chars>"`): 1-128 characters (code points, as `for…of` counts them),
 * any of them: the printable rule of user and device ids (section 2's claims) is not the contract's for message ids,
 * and would refuse emoji joined by U+200D and characters newer than this Node's Unicode tables. The string must be
 * well-formed: a lone surrogate has no UTF-8 (a JSON body cannot even carry one, section 3's UTF-8 rule).
 */
export function isMessageId(v: unknown): v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID_CHARS * 2) return false;
  if (v.length > MAX_ID_CHARS) {
    let n = 0;
    for (const _ of v) if (++n > MAX_ID_CHARS) return false;
  }
  return isWellFormed(v);
}

/** `obj[field]` as a message id (`isMessageId`), else `invalid_request` naming the field. */
export function messageId(obj: Json, field: string): string {
  const v = obj[field];
  if (!isMessageId(v)) throw invalid(field, `a string of 1-${MAX_ID_CHARS} characters`);
  return v;
}

/** Every character is in U+0020-U+007E (none of those is in \p{C}): most ids, checked without the Unicode regex. */
function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

export function str(obj: Json, field: string, maxChars: number): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length > maxChars) throw invalid(field, `a string of at most ${maxChars} characters`);
  return v;
}

/** A string of any length, or undefined when absent; a size limit, if any, is the caller's (see decodeSendRequest). */
export function optionalString(obj: Json, field: string): string | undefined {
  const v = obj[field];
  if (v !== undefined && typeof v !== 'string') throw invalid(field, 'a string');
  return v;
}

export function oneOf<T extends string>(obj: Json, field: string, allowed: readonly T[]): T {
  const v = obj[field];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalid(field, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
  }
  return v as T;
}

/**
 * `{string: string}` (section 3's `data`) as it came, once every key and value is checked, or undefined when absent.
 * A `__proto__` key (JSON.parse keeps it as an own property) is refused with `invalid_field`: a copy into a plain
 * object (`copyStringMap`) would silently drop it. Key count and sizes are the caller's to limit; checked before the
 * copy, so a decoder may refuse on other grounds first without copying what may be a very large object.
 */
export function checkStringMap(obj: Json, field: string): Readonly<Record<string, string>> | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(field, 'an object of string values');
  for (const k of Object.keys(v)) {
    if (k === '__proto__') throw invalidField(`${field}.__proto__`, 'absent (it cannot be carried as a key)');
    if (typeof v[k] !== 'string') throw invalid(`${field}.${k.slice(0, 64)}`, 'a string');
  }
  return v as Readonly<Record<string, string>>;
}

/** A plain-object copy of a map `checkStringMap` passed (the message keeps its own, not the parsed body's). */
export function copyStringMap(map: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(map)) out[k] = map[k];
  return out;
}
