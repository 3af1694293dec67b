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

/** 1-128 printable characters (user ids, device ids, message ids). */
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

/** Every character is in U+0020-U+007E (none of those is in \p{C}): most ids, checked without the Unicode regex. */
function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

export function optionalId(obj: Json, field: string): string | undefined {
  return obj[field] === undefined ? undefined : id(obj, field);
}

export function str(obj: Json, field: string, maxChars: number): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length > maxChars) throw invalid(field, `a string of at most ${maxChars} characters`);
  return v;
}

export function optionalStr(obj: Json, field: string, maxChars: number): string | undefined {
  return obj[field] === undefined ? undefined : str(obj, field, maxChars);
}

export function oneOf<T extends string>(obj: Json, field: string, allowed: readonly T[]): T {
  const v = obj[field];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalid(field, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
  }
  return v as T;
}

export function optionalInt(obj: Json, field: string, min: number, max: number): number | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(field, `an integer ${min}-${max}`);
  }
  return v === 0 ? 0 : v; // -0 is an integer too, but would not survive a round trip through JSON
}

/**
 * `{string: string}` with bounded key count and sizes. A `__proto__` key (JSON.parse keeps it as an own property)
 * is refused with `invalid_field`: copying it into a plain object would silently drop it.
 */
export function optionalStringMap(obj: Json, field: string, maxKeys: number, maxChars: number): Record<string, string> | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(field, 'an object of string values');
  const keys = Object.keys(v);
  if (keys.length > maxKeys) throw invalid(field, `an object of at most ${maxKeys} keys`);
  const out: Record<string, string> = {};
  for (const k of keys) {
    if (k === '__proto__') throw invalidField(`${field}.__proto__`, 'absent (it cannot be carried as a key)');
    const s = v[k];
    if (typeof s !== 'string' || s.length > maxChars || k.length > 256) {
      throw invalid(`${field}.${k}`, `a string of at most ${maxChars} characters`);
    }
    out[k] = s;
  }
  return out;
}
