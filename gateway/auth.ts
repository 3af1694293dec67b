import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { MOBILE_OS, isId, type ClientKind, type MobileOs } from '../protocol/index.js';

/** Who a client is, as its hello token says (PROTOCOL.md section 2). */
export interface ClientIdentity {
  user: string;
  device: string;
  kind: ClientKind;
  /** Required for mobiles; absent for PCs. */
  os?: MobileOs;
  /** PC token claim `"bot": true`: a bot or bridge, which never makes the user's PC state active (issue 10 part 5). */
  bot?: true;
}

export type TokenCheck = { ok: true; identity: ClientIdentity } | { ok: false; reason: string };

/**
 * Section 2: HS256 only, `exp` required; `sub`, `dev` 1-128 printable characters, `kind` pc|mobile,
 * `os` required for mobiles; `bot` (optional, boolean) marks a PC session of a bot or bridge. `now` is passed in so expiry follows the injected clock.
 */
export async function verifyClientToken(token: string, secret: Uint8Array, now: number): Promise<TokenCheck> {
  if (token === '') return { ok: false, reason: 'token missing' }; // as a hello without one: nothing to parse
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, secret, {
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
      currentDate: new Date(now),
    }));
  } catch (e) {
    // The reason goes to the close frame and the log; never the token itself, never the secret.
    return { ok: false, reason: refusalReason(e) };
  }
  return readClaims(payload);
}

/**
 * Why jose refused a token, in the words section 2 lists for the close reason (`expired`, `missing exp`,
 * `bad signature`, `wrong algorithm`, …). Only the error's class and claim name are used, never its message.
 */
export function refusalReason(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) return 'expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.reason === 'missing') return `missing ${e.claim}`;
    return e.claim === 'nbf' ? 'not yet valid' : `bad ${e.claim}`;
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (e instanceof joseErrors.JOSEAlgNotAllowed || e instanceof joseErrors.JOSENotSupported) return 'wrong algorithm'; // section 2's word for it, exactly: only HS256 is taken
  if (e instanceof joseErrors.JWTInvalid) return 'claims are not a JSON object';
  return 'malformed token (not a compact JWS)';
}

/** Checks the claims of a token whose signature and expiry are already verified. */
export function readClaims(claims: Record<string, unknown>): TokenCheck {
  const { sub, dev, kind, os, bot } = claims;
  if (!isId(sub)) return { ok: false, reason: 'sub must be 1-128 printable characters' };
  if (!isId(dev)) return { ok: false, reason: 'dev must be 1-128 printable characters' };
  if (bot !== undefined && typeof bot !== 'boolean') return { ok: false, reason: 'bot must be true or false' };
  if (kind === 'pc') {
    // A PC's os claim, if any, is not used by routing: ignore it rather than refuse the client.
    return { ok: true, identity: bot === true ? { user: sub, device: dev, kind, bot } : { user: sub, device: dev, kind } };
  }
  if (kind !== 'mobile') return { ok: false, reason: 'kind must be "pc" or "mobile"' };
  // A bot is a desktop-side notion (claim 4 is about a human at the PC); on a mobile token it is refused, not ignored.
  if (bot === true) return { ok: false, reason: 'bot is only allowed for kind "pc"' };
  if (typeof os !== 'string' || !(MOBILE_OS as readonly string[]).includes(os)) {
    return { ok: false, reason: `os must be one of ${MOBILE_OS.join(', ')} for a mobile` };
  }
  return { ok: true, identity: { user: sub, device: dev, kind, os: os as MobileOs } };
}

/**
 * Constant-time bearer check (PROTOCOL.md section 3, `Authorization: Bearer <api key>`): the presented token is
 * compared with the key character by character without an early exit.
 */
export function bearerMatches(header: string | undefined, apiKey: string): boolean {
  return bearerCheck(apiKey)(header);
}

const BEARER = /^Bearer +(\S+) *$/i;

/**
 * The check of every `/v1` request. It takes the same number of steps, the key's length, whatever token is presented
 * (shorter, longer, wrong from the first or the last character), so its time tells nothing about the key. It used to
 * hash both sides with SHA-256 first to hide lengths; a loop whose length never depends on the token hides them too,
 * and the hash was the largest item of a request's own work (issue 13).
 */
export function bearerCheck(apiKey: string): (header: string | undefined) => boolean {
  return (header) => {
    if (header === undefined) return false;
    const m = BEARER.exec(header);
    return m !== null && sameSecret(m[1], apiKey);
  };
}

/**
 * Whether `given` is `secret`, comparing every UTF-16 code unit of `secret` whatever the first difference. A token of
 * another length is refused by the length check, and `secret` is then compared with itself, so every read stays in
 * bounds and the loop runs the same code either way.
 */
function sameSecret(given: string, secret: string): boolean {
  const probe = given.length === secret.length ? given : secret;
  let diff = given.length ^ secret.length;
  for (let i = 0; i < secret.length; i++) diff |= probe.charCodeAt(i) ^ secret.charCodeAt(i);
  return diff === 0;
}
