import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Apple rejects provider tokens older than an hour and throttles refreshes more often than every 20 minutes. */
export const DEFAULT_TOKEN_REFRESH_MS = 50 * 60_000;

/**
 * The APNs provider token: an ES256 JWT `{alg, kid}.{iss, iat}` signed with the team's .p8 key, reused until it
 * is 50 minutes old or APNs rejects it. Neither the key nor the token ever leaves this object (never logged).
 */
export class ProviderToken {
  private jwt = '';
  private issuedAt = Number.NEGATIVE_INFINITY;

  private constructor(
    private readonly key: KeyObject,
    private readonly keyId: string,
    private readonly teamId: string,
    private readonly now: () => number,
    private readonly refreshMs: number,
  ) {}

  /** Reads the .p8 key; the error names the file and the problem, never the key material. */
  static load(keyFile: string, keyId: string, teamId: string, now: () => number, refreshMs = DEFAULT_TOKEN_REFRESH_MS): ProviderToken {
    let key: KeyObject;
    try {
      key = createPrivateKey(readFileSync(keyFile));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`cannot read the APNs key file ${keyFile}: ${code ?? 'not a PEM private key'}`);
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`the APNs key file ${keyFile} must hold a P-256 (ES256) key`);
    }
    return new ProviderToken(key, keyId, teamId, now, refreshMs);
  }

  current(): string {
    const now = this.now();
    if (now - this.issuedAt >= this.refreshMs) {
      this.jwt = this.signed(now);
      this.issuedAt = now;
    }
    return this.jwt;
  }

  /** Forces a new token, unless `rejected` was already replaced: a burst of 403s for one token refreshes once. */
  refresh(rejected: string): void {
    if (rejected === this.jwt) this.issuedAt = Number.NEGATIVE_INFINITY;
  }

  private signed(now: number): string {
    const header = b64url({ alg: 'ES256', kid: this.keyId });
    const claims = b64url({ iss: this.teamId, iat: Math.floor(now / 1000) });
    const signature = sign('sha256', Buffer.from(`${header}.${claims}`), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${header}.${claims}.${signature.toString('base64url')}`;
  }
}

function b64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
