import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';

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

/** Reads a Google service-account JSON file; a missing field or unreadable key is a reason, never a throw. */
export async function readServiceAccount(file: string): Promise<{ ok: true; account: ServiceAccount } | { ok: false; reason: string }> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    return { ok: false, reason: `fcm service account ${file} is unreadable: ${err instanceof Error ? err.message : String(err)}` };
  }
  for (const field of ['project_id', 'client_email', 'private_key'] as const) {
    if (typeof json[field] !== 'string' || json[field] === '') return { ok: false, reason: `fcm service account ${file} has no "${field}"` };
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(json.private_key as string);
  } catch (err) {
    return { ok: false, reason: `fcm service account ${file} has an unusable private_key: ${err instanceof Error ? err.message : String(err)}` };
  }
  const tokenUri = typeof json.token_uri === 'string' && json.token_uri !== '' ? json.token_uri : GOOGLE_TOKEN_URI;
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
