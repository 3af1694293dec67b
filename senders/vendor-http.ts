import http from 'node:http';
import https from 'node:https';
import type { PushOutcome } from './types.js';

/** A vendor request not answered in this time is abandoned and reported as `retry`. */
export const DEFAULT_VENDOR_TIMEOUT_MS = 30_000;
/** Keep-alive sockets per vendor origin and sender. */
export const DEFAULT_MAX_SOCKETS = 64;

/** Options shared by the FCM, HMS and Web Push senders (the worker passes none: the defaults are production's). */
export interface VendorClientOptions {
  /**
   * Trusted CA certificates (PEM) for a private or test endpoint. Default: the CAs Node trusts, including
   * `NODE_EXTRA_CA_CERTS` (PROTOCOL.md section 1). Setting it replaces the default store for this sender.
   */
  ca?: string | Buffer;
  /** Default DEFAULT_VENDOR_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Clock for OAuth token expiry and Retry-After dates; default Date.now (tests pass a fake one). */
  now?: () => number;
  /** Default DEFAULT_MAX_SOCKETS. */
  maxSockets?: number;
}

export interface VendorResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One sender's connections: a keep-alive agent per scheme, so the real vendor (https) and a loopback test server
 * (http or https) are reached the same way, and sockets are reused across tasks of the worker.
 */
export class VendorHttp {
  readonly httpsAgent: https.Agent;
  private readonly httpAgent: http.Agent;
  private readonly timeoutMs: number;

  constructor(options: VendorClientOptions = {}) {
    const maxSockets = options.maxSockets ?? DEFAULT_MAX_SOCKETS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_VENDOR_TIMEOUT_MS;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, ...(options.ca ? { ca: options.ca } : {}) });
  }

  /**
   * POSTs `body`; rejects only for network failures and timeouts (any HTTP answer resolves). A reused keep-alive
   * socket that the server closed meanwhile fails at once with ECONNRESET/EPIPE before any answer: that request is
   * sent again once on a fresh socket instead of counting as a vendor failure (it would trip the breaker).
   */
  async post(url: URL, body: string, headers: Record<string, string>): Promise<VendorResponse> {
    try {
      return await this.postOnce(url, body, headers);
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { reusedSocket?: boolean };
      if (!err.reusedSocket || (err.code !== 'ECONNRESET' && err.code !== 'EPIPE')) throw e;
      return this.postOnce(url, body, headers);
    }
  }

  private postOnce(url: URL, body: string, headers: Record<string, string>): Promise<VendorResponse> {
    const secure = url.protocol === 'https:';
    const request = secure ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        agent: secure ? this.httpsAgent : this.httpAgent,
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        timeout: this.timeoutMs,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.end(body);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A throttled or failing vendor: retry, honouring its Retry-After. */
export function retryOutcome(reason: string, headers: Record<string, string | string[] | undefined>, now: number): PushOutcome {
  const after = retryAfterMs(headers['retry-after'], now);
  return after === undefined ? { outcome: 'retry', reason } : { outcome: 'retry', reason, retryAfterMs: after };
}

/**
 * A request that never got an HTTP answer (refused, reset, timed out) is worth retrying; an untrusted TLS
 * certificate is configuration, so it fails with a hint instead of retrying forever.
 */
export function networkOutcome(vendor: string, err: unknown): PushOutcome {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? e?.message ?? String(err);
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return { outcome: 'failed', reason: `${vendor} TLS certificate rejected: ${code} (a private CA goes in NODE_EXTRA_CA_CERTS)` };
  }
  return { outcome: 'retry', reason: `${vendor} unreachable: ${code}` };
}

/** Parses a JSON answer body; undefined for an empty or non-JSON body (proxies answer HTML). */
export function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}
