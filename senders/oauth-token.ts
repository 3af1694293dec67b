import type { PushOutcome } from './types.js';
import { networkOutcome, parseJson, retryOutcome, type VendorHttp, type VendorResponse } from './vendor-http.js';

/** A cached OAuth token is replaced this long before the vendor says it expires (clock skew, in-flight sends). */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;

/**
 * After the vendor refused the app's credentials (a configuration error: RFC 6749 `invalid_grant` or `invalid_client`
 * from the token endpoint, or a 401 that a fresh access token gets too), every send fails at once with that outcome for
 * this long, ms, before the token endpoint is asked again: a revoked key cost a token request (and two sends) per
 * push, hammering the vendor's OAuth endpoint under load. A fixed configuration is tried again within this.
 */
export const CREDENTIALS_REFUSED_MS = 60_000;

/** What a token endpoint gave: a token with its lifetime, or the outcome every waiting send reports. */
export type TokenFetch =
  | { ok: true; token: string; expiresInS: number }
  | { ok: false; outcome: PushOutcome };

export type TokenGet = { ok: true; token: string } | { ok: false; outcome: PushOutcome };

/**
 * One OAuth access token shared by all sends of a sender: fetched on first use, reused until shortly before
 * expiry, fetched once for any number of concurrent sends, and dropped when the vendor rejects it (401).
 * Temporary failures are not cached: the next send asks again. A refusal of the credentials is, for
 * CREDENTIALS_REFUSED_MS (`refuse`, and a token endpoint's own configuration error).
 */
export class AccessTokenCache {
  private current?: { token: string; refreshAt: number };
  private refused?: { outcome: PushOutcome; until: number };
  private pending?: Promise<TokenFetch>;
  /** Token endpoint calls so far (tests and metrics). */
  fetches = 0;

  constructor(private readonly fetchToken: () => Promise<TokenFetch>, private readonly now: () => number) {}

  async get(): Promise<TokenGet> {
    if (this.current && this.now() < this.current.refreshAt) return { ok: true, token: this.current.token };
    if (this.refused && this.now() < this.refused.until) return { ok: false, outcome: this.refused.outcome };
    if (!this.pending) {
      this.fetches++;
      const startedAt = this.now();
      this.pending = this.fetchToken().catch((err): TokenFetch => (
        { ok: false, outcome: { outcome: 'retry', reason: `OAuth token request failed: ${err instanceof Error ? err.message : String(err)}` } }
      )).then((r) => {
        if (r.ok) {
          const lifetimeMs = r.expiresInS * 1000;
          // Short-lived tokens (tests, odd vendors) still get half their life rather than none.
          this.current = { token: r.token, refreshAt: startedAt + lifetimeMs - Math.min(TOKEN_REFRESH_MARGIN_MS, lifetimeMs / 2) };
          this.refused = undefined;
        } else if (r.outcome.outcome === 'failed' && r.outcome.config) this.refuse(r.outcome);
        return r;
      }).finally(() => {
        this.pending = undefined;
      });
    }
    const r = await this.pending;
    return r.ok ? { ok: true, token: r.token } : r;
  }

  /**
   * The vendor refused the app's credentials (`outcome`, a configuration error): sends fail with it, without a token
   * request, for CREDENTIALS_REFUSED_MS.
   */
  refuse(outcome: PushOutcome): void {
    this.current = undefined;
    this.refused = { outcome, until: this.now() + CREDENTIALS_REFUSED_MS };
  }

  /** Forgets `token` after the vendor refused it; a newer token fetched meanwhile by another send is kept. */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }
}

/**
 * POSTs an OAuth token request form (FCM's jwt-bearer assertion, HMS's client credentials) and maps the answer:
 * a token, `retry` for 429/5xx/network errors (Retry-After honoured), `failed` with the endpoint's reason otherwise.
 */
export async function exchangeTokenForm(http: VendorHttp, url: URL, form: Record<string, string>, label: string, now: number): Promise<TokenFetch> {
  let res: VendorResponse;
  try {
    res = await http.post(url, new URLSearchParams(form).toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  } catch (err) {
    return { ok: false, outcome: networkOutcome(label, err) };
  }
  const json = parseJson(res.body) as { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } | undefined;
  if (res.status === 200 && typeof json?.access_token === 'string') {
    return { ok: true, token: json.access_token, expiresInS: typeof json.expires_in === 'number' ? json.expires_in : 3600 };
  }
  const reason = `${label} ${res.status}: ${String(json?.error ?? '')} ${String(json?.error_description ?? res.body.slice(0, 200))}`.trim();
  if (res.status === 429 || res.status >= 500) return { ok: false, outcome: retryOutcome(reason, res.headers, now) };
  // RFC 6749 section 5.2 (invalid_grant, invalid_client, unauthorized_client...): the credentials themselves are refused,
  // so every push of this app and vendor fails alike until an operator fixes them: a configuration error, logged.
  return { ok: false, outcome: { outcome: 'failed', reason, config: true } };
}
