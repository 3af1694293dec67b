import type { SwitchboardError } from './errors.js';

/** Outcome of decoding untrusted input: decoders return instead of throwing. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: SwitchboardError };

export const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
export const fail = <T = never>(error: SwitchboardError): Decoded<T> => ({ ok: false, error });
