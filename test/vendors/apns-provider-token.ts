import { verify, type KeyObject } from 'node:crypto';

/**
 * Apple refuses provider tokens issued more than an hour ago ("Establishing a token-based connection to APNs":
 * "APNs rejects any request whose token contains a timestamp that is more than one hour old"), with 403
 * ExpiredProviderToken ("Handling notification responses from APNs").
 */
const MAX_TOKEN_AGE_S = 3600;

/**
 * Checks `authorization: bearer <JWT>` as APNs does: ES256 header with the expected `kid`, `iss` = team id, a
 * signature by the team's key, `iat` within the last hour. Returns Apple's reason for a refusal, or undefined.
 * A signature is verified once per distinct token (clients reuse one token for many requests).
 */
export class ProviderTokenVerifier {
  private readonly verified = new Map<string, number>();

  /** `now`: the server's clock in epoch ms (tests pass a manual one to age tokens without waiting). */
  constructor(private readonly publicKey: KeyObject, private readonly keyId: string, private readonly teamId: string, private readonly now: () => number = Date.now) {}

  check(authorization: string | undefined): string | undefined {
    if (!authorization) return 'MissingProviderToken';
    const jwt = /^bearer (.+)$/i.exec(authorization)?.[1];
    if (!jwt) return 'InvalidProviderToken';
    let iat = this.verified.get(jwt);
    if (iat === undefined) {
      const parsed = this.verifySignature(jwt);
      if (parsed === undefined) return 'InvalidProviderToken';
      iat = parsed;
      this.verified.set(jwt, iat);
    }
    const now = Math.floor(this.now() / 1000);
    if (now - iat > MAX_TOKEN_AGE_S) return 'ExpiredProviderToken';
    if (iat > now + 60) return 'InvalidProviderToken';
    return undefined;
  }

  /** The token's `iat` when it is well-formed and signed by our key, else undefined. */
  private verifySignature(jwt: string): number | undefined {
    const parts = jwt.split('.');
    if (parts.length !== 3) return undefined;
    try {
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as { alg?: unknown; kid?: unknown };
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { iss?: unknown; iat?: unknown };
      if (header.alg !== 'ES256' || header.kid !== this.keyId || claims.iss !== this.teamId) return undefined;
      if (typeof claims.iat !== 'number') return undefined;
      const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
      const ok = verify('sha256', signed, { key: this.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2], 'base64url'));
      return ok ? claims.iat : undefined;
    } catch {
      return undefined;
    }
  }
}
