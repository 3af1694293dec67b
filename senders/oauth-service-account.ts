import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseJsonText } from '../base/json-text.js';
import { isObject } from '../protocol/fields.js';
import { fileErrorCode } from '../base/file-errors.js';

/** The only scope the FCM sender asks for. */
export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
/** Google's token endpoint, used when the service-account file names none. */
export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** Lifetime Google accepts for a service-account assertion (at most one hour). */
const ASSERTION_LIFETIME_S = 3600;

export interface ServiceAccount {
  projectId: string;
  clientEmail: string;
  privateKey: KeyObject;
  /** The assertion's audience and, unless an endpoint override is set, where it is exchanged. */
  tokenUri: string;
}

/**
 * Reads a Google service-account JSON file (SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE, `fcm.serviceAccountFile` of an app);
 * an unreadable file, a missing field or an unusable key is a reason naming the file, never a throw, never its content.
 */
export async function readServiceAccount(file: string): Promise<{ ok: true; account: ServiceAccount } | { ok: false; reason: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, reason: `fcm service account ${file} is unreadable (${fileErrorCode(err)})` };
  }
  const parsed = parseServiceAccount(text);
  return parsed.ok ? parsed : { ok: false, reason: `fcm service account ${file} ${parsed.problem}` };
}

/**
 * The service account in a key file's text, or what is wrong with it, as "is …" / "has …" (never the text itself).
 * The sender needs (Google, "Using OAuth 2.0 for Server to Server Applications", and the FCM HTTP v1 send URL):
 * `project_id` for the send path, `client_email` as the assertion's `iss`, `private_key` an RSA private key in PEM
 * (the assertion is RS256), and `token_uri`, when present, an http(s) URL (the assertion's audience).
 */
export function parseServiceAccount(text: string): { ok: true; account: ServiceAccount } | { ok: false; problem: string } {
  const parsed = parseJsonText(text);
  if (!parsed.ok) return { ok: false, problem: `is ${parsed.problem}` };
  if (!isObject(parsed.value)) return { ok: false, problem: 'is not a JSON object' };
  const json = parsed.value;
  for (const field of ['project_id', 'client_email', 'private_key'] as const) {
    if (typeof json[field] !== 'string' || json[field] === '') return { ok: false, problem: `has no "${field}"` };
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(json.private_key as string);
  } catch (err) {
    // OpenSSL's message names the decoder that failed, not the key.
    return { ok: false, problem: `has an unusable private_key (${err instanceof Error ? err.message : String(err)})` };
  }
  if (privateKey.asymmetricKeyType !== 'rsa') return { ok: false, problem: `has a private_key that is not an RSA key (${privateKey.asymmetricKeyType}; the assertion is RS256)` };
  let tokenUri = GOOGLE_TOKEN_URI;
  if (json.token_uri !== undefined && json.token_uri !== '') {
    if (typeof json.token_uri !== 'string' || !isHttpUrl(json.token_uri)) return { ok: false, problem: 'has a token_uri that is not an http(s) URL' };
    tokenUri = json.token_uri;
  }
  return { ok: true, account: { projectId: json.project_id as string, clientEmail: json.client_email as string, privateKey, tokenUri } };
}

/** The RS256 JWT a service account exchanges for an access token (RFC 7523 jwt-bearer grant, Google's claims). */
export function serviceAccountAssertion(account: ServiceAccount, nowMs: number): string {
  const iat = Math.floor(nowMs / 1000);
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: account.clientEmail, scope: FCM_SCOPE, aud: account.tokenUri, iat, exp: iat + ASSERTION_LIFETIME_S }));
  const input = `${header}.${claims}`;
  return `${input}.${sign('sha256', Buffer.from(input), account.privateKey).toString('base64url')}`;
}

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}
