import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileErrorCode } from '../base/file-errors.js';
import type { SlotToken, TokenSlot } from './apns-token-slot.js';

/*
 * Apple, "Establishing a token-based connection to APNs" (Refresh your token regularly): "Refresh your token no more
 * than once every 20 minutes and no less than once every 60 minutes. APNs rejects any request whose token contains a
 * timestamp that is more than one hour old. Similarly, APNs reports an error if you recreate your tokens more than
 * once every 20 minutes" (429 TooManyProviderTokenUpdates, "Handling notification responses from APNs").
 */

/** Apple's shortest interval between two provider tokens. */
export const MIN_TOKEN_RENEWAL_MS = 20 * 60_000;
/** Apple refuses a token whose `iat` is older than this (403 ExpiredProviderToken). */
export const MAX_TOKEN_AGE_MS = 60 * 60_000;
/** A token is renewed at this age: well inside Apple's 20-60 minute window. */
export const DEFAULT_TOKEN_REFRESH_MS = 50 * 60_000;

/**
 * The APNs provider token: an ES256 JWT `{alg, kid}.{iss, iat}` signed with the team's .p8 key (PROTOCOL.md
 * section 5). Signed again only when it reaches `refreshMs` (20-59 minutes, default 50), or at once after APNs
 * answered 403 ExpiredProviderToken for it, and then at most once per 20 minutes: a clock an hour off cannot make it
 * sign on every push. Neither the key nor the token ever leaves this object (never logged), but for the `slot` that the
 * sender threads of one app share (senders/apns-token-slot.ts): then one token serves them all, signed by whichever
 * thread first needs a new one.
 */
export class ProviderToken {
  private jwt = '';
  private issuedAt = Number.NEGATIVE_INFINITY;
  private forcedAt = Number.NEGATIVE_INFINITY;
  /** Tokens signed so far (tests: Apple allows one per 20 minutes). */
  signed = 0;

  private constructor(
    private readonly key: KeyObject,
    readonly keyId: string,
    readonly teamId: string,
    private readonly now: () => number,
    private readonly refreshMs: number,
    private readonly slot?: TokenSlot,
  ) {}

  /**
   * Reads the .p8 key (`readApnsKey`); the error names the file and the problem, never the key material. `refreshMs`
   * is clamped to Apple's window [20 min, 59 min].
   */
  static load(keyFile: string, keyId: string, teamId: string, now: () => number, refreshMs = DEFAULT_TOKEN_REFRESH_MS, slot?: TokenSlot): ProviderToken {
    const read = readApnsKey(keyFile);
    if (!read.ok) {
      throw new Error(read.unreadable ? `cannot read the APNs key file ${keyFile}: ${read.problem}` : `the APNs key file ${keyFile} must hold a P-256 (ES256) key (${read.problem})`);
    }
    const refresh = Math.min(MAX_TOKEN_AGE_MS - 60_000, Math.max(MIN_TOKEN_RENEWAL_MS, refreshMs));
    return new ProviderToken(read.key, keyId, teamId, now, refresh, slot);
  }

  /**
   * The token to send now: the current one, or a new one once the current one is `refreshMs` old (with a slot: the
   * slot's, if another thread signed one meanwhile).
   */
  current(): string {
    const now = this.now();
    if (now - this.issuedAt < this.refreshMs) return this.jwt;
    if (this.slot === undefined) this.adopt(this.sign(now, this.forcedAt));
    else this.adopt(this.slot.exchange((held) => (held !== undefined && now - held.issuedAt < this.refreshMs ? undefined : this.sign(now, held?.forcedAt ?? this.forcedAt)))!);
    return this.jwt;
  }

  /**
   * APNs answered 403 ExpiredProviderToken for `rejected`. Returns true when `current()` now gives another token
   * worth sending: one signed by another push meanwhile, or a new one signed here. Returns false when a token signed
   * this way less than 20 minutes ago was refused as expired too (our clock is off): signing again cannot help and
   * would only earn 429 TooManyProviderTokenUpdates.
   */
  expired(rejected: string): boolean {
    const renew = (held: SlotToken | undefined): { next?: SlotToken; worth: boolean } => {
      if (held !== undefined && held.jwt !== rejected) return { worth: true }; // renewed by another push (or thread) meanwhile
      const now = this.now();
      const forcedAt = held?.forcedAt ?? Number.NEGATIVE_INFINITY;
      if (now - forcedAt < MIN_TOKEN_RENEWAL_MS) return { worth: false };
      return { next: this.sign(now, now), worth: true };
    };
    if (this.slot === undefined) {
      const { next, worth } = renew(this.jwt === '' ? undefined : { jwt: this.jwt, issuedAt: this.issuedAt, forcedAt: this.forcedAt });
      if (next !== undefined) this.adopt(next);
      return worth && this.jwt !== '';
    }
    let worth = false;
    const held = this.slot.exchange((h) => {
      const r = renew(h);
      worth = r.worth;
      return r.next;
    });
    if (held !== undefined) this.adopt(held);
    return worth;
  }

  private adopt(token: SlotToken): void {
    this.jwt = token.jwt;
    this.issuedAt = token.issuedAt;
    this.forcedAt = token.forcedAt;
  }

  /** A new token signed at `now` (epoch ms); `forcedAt` carried as given. */
  private sign(now: number, forcedAt: number): SlotToken {
    const header = b64url({ alg: 'ES256', kid: this.keyId });
    const claims = b64url({ iss: this.teamId, iat: Math.floor(now / 1000) });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key: this.key, dsaEncoding: 'ieee-p1363' });
    this.signed++;
    return { jwt: `${header}.${claims}.${signature.toString('base64url')}`, issuedAt: now, forcedAt };
  }
}

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/**
 * The APNs signing key in `keyFile` (SWITCHBOARD_APNS_KEY_FILE, `apns.keyFile` of an app), or the problem: the file
 * cannot be read (`unreadable`, problem `ENOENT`, … or "not a PEM private key") or holds another kind of key. Apple,
 * "Establishing a token-based connection to APNs": the .p8 key signs ES256 tokens, so it must be an EC private key on
 * P-256 (Apple issues it as PKCS#8 PEM; any PEM form `crypto.createPrivateKey` loads is taken). The problem never
 * quotes the file.
 */
export function readApnsKey(keyFile: string): { ok: true; key: KeyObject } | { ok: false; unreadable: boolean; problem: string } {
  let pem: Buffer;
  try {
    pem = readFileSync(keyFile);
  } catch (err) {
    return { ok: false, unreadable: true, problem: fileErrorCode(err) };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return { ok: false, unreadable: true, problem: 'not a PEM private key' };
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `an EC key on ${key.asymmetricKeyDetails?.namedCurve ?? 'another curve'}` : `a key of type ${key.asymmetricKeyType ?? 'unknown'}`;
    return { ok: false, unreadable: false, problem: `it holds ${kind}` };
  }
  return { ok: true, key };
}
