// Types of playground-trail.js (the page's plain-JS module), for the unit test. Not served.
import type { Decision, Vendor } from '../protocol/index.js';

export type PhoneMode = 'foreground' | 'background' | 'offline';

/** What the page knows besides the decision; times are epoch ms. */
export interface TrailContext {
  /** The node's configured push vendors (`GET /playground/api/info`). */
  vendors: Readonly<Record<Vendor, boolean>>;
  /** The phone pane's OS: `ios`, `android`, `harmony` or `web`. */
  phoneOs: string;
  /** The phone pane has stored a push token (`registered` frame). */
  phoneRegistered: boolean;
  phoneModeAt(at: number): PhoneMode | undefined;
  /** When the PC pane began reporting `reason`, as of `at`. */
  pcSince(at: number, reason: string): number | undefined;
  /** When the pane of `device` received (and acked) message `id`. */
  ackedAt(device: string, id: string): number | undefined;
}

/** A push for the notification tray: sent by a configured vendor (with its outcome), or a stand-in for an unconfigured one. */
export interface TrayEntry {
  vendor: Vendor;
  configured: boolean;
  outcome?: string;
}

export const VENDOR_OF: Record<string, Vendor>;
export const VENDOR_NAME: Record<Vendor, string>;
export const REASON_WORDS: Record<string, string>;
export function clock(t: number): string;
/** A decision as `GET …/decisions` answers it. */
export type AnyDecision = Decision;
export function standInVendor(d: AnyDecision, ctx: TrailContext): Vendor | undefined;
export function explain(d: AnyDecision, ctx: TrailContext): { words: string; tray?: TrayEntry };
