import { Packr } from 'msgpackr';
import { SwitchboardApiError, errorFromAnswer } from './errors.js';

export { SwitchboardApiError, type ApiErrorCode } from './errors.js';

/**
 * Chat-server SDK for Node (PROTOCOL.md section 3): one `send()` over HTTP or NATS, retried with the same id while
 * the answer is temporary (a gateway dying mid-request, 503, a NATS timeout) — the server's dedupe makes that
 * safe: an attempt that was accepted before the failure answers `duplicate`. Batch sends, read sync, policy.
 */

/** The message object of section 3. */
export interface OutgoingMessage {
  /** Unique, 1-128 characters; the same id on a retry is what makes retries safe. */
  id: string;
  to: string;
  from?: string;
  title?: string;
  text?: string;
  data?: Record<string, string>;
  collapseKey?: string;
  priority?: 'high' | 'normal';
  ttlSeconds?: number;
  /** Section 4, quiet hours: push with sound anyway. */
  urgent?: boolean;
}

/** `accepted`: durably accepted now; `duplicate`: the id was accepted before (after a retry: by an earlier attempt). */
export interface SendResult {
  id: string;
  status: 'accepted' | 'duplicate';
}

export type BatchResult = SendResult | { id?: string; error: SwitchboardApiError };

/** The part of a nats.js `NatsConnection` used here. */
export interface NatsRequester {
  request(subject: string, payload: Uint8Array, opts: { timeout: number }): Promise<{ data: Uint8Array }>;
}

export interface RetryOptions {
  /** Attempts in all, first included. Default 5. */
  attempts?: number;
  /** First delay, ms, doubled per attempt with full jitter. Default 200. */
  initialMs?: number;
  /** Largest delay, ms. Default 5000. */
  maxMs?: number;
}

/**
 * How long one attempt waits for its answer, ms, by default: longer than a cluster node keeps publishing a message
 * JetStream left unanswered before it answers 504 `outcome_unknown` (four 5 s publish timeouts), so an attempt hears
 * that answer rather than timing out beside it.
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 25_000;

export interface ChatServerOptions {
  /**
   * HTTP: `url` is the node's origin (`http://127.0.0.1:7400`), `apiKey` is SWITCHBOARD_API_KEY; `timeoutMs` per
   * attempt, default DEFAULT_ATTEMPT_TIMEOUT_MS.
   */
  http?: { url: string; apiKey: string; timeoutMs?: number };
  /**
   * NATS: sends go to `<subjectPrefix>.send` and `.send.batch` (default prefix `switchboard`) as MessagePack; `timeoutMs`
   * per request, default DEFAULT_ATTEMPT_TIMEOUT_MS. Other calls need `http`.
   */
  nats?: { connection: NatsRequester; subjectPrefix?: string; timeoutMs?: number };
  retry?: RetryOptions;
}

/** Section 3: up to 500 messages per batch. */
export const MAX_BATCH = 500;

const packr = new Packr({ useRecords: false });

/**
 * What a `transport` error says when its attempt certainly reached no server (connection refused, a name that does
 * not resolve, no NATS responder): unlike a timeout, such an attempt cannot have been accepted (see `send`).
 */
const NOT_SENT_CAUSE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|no responders/i;

export class ChatServerClient {
  constructor(private readonly opts: ChatServerOptions) {
    if (!opts.http && !opts.nats) throw new TypeError('ChatServerClient needs http or nats options');
    if (opts.http) {
      // fetch refuses such a URL on every call, with the password in its error message: refuse it once, here.
      const url = URL.canParse(opts.http.url) ? new URL(opts.http.url) : undefined;
      if (url === undefined || !/^https?:$/.test(url.protocol)) throw new TypeError('http.url must be an http(s) URL, e.g. http://127.0.0.1:7400');
      if (url.username !== '' || url.password !== '') throw new TypeError('http.url must not hold a user name or password (the API key authenticates)');
    }
  }

  /**
   * Sends one message (NATS when configured, else HTTP); retries temporary failures with the same id. When every
   * attempt failed and one of them may have been accepted all the same (it timed out, or was answered
   * `outcome_unknown`), the error is `outcome_unknown`, never the last attempt's 503: section 3's 503 means "never
   * delivered", which no later attempt can promise for an earlier one.
   */
  send(message: OutgoingMessage): Promise<SendResult> {
    return this.retrying(() => (this.opts.nats ? this.natsSend(message) : this.httpSend(message)), true);
  }

  /**
   * Sends 1-500 messages; one result per message, in order (a bad message fails alone). HTTP:
   * `POST /v1/messages/batch` (section 3); NATS: the same body on `<prefix>.send.batch`. The whole batch is retried
   * on a temporary failure: the ids make that safe (accepted ones answer `duplicate`).
   */
  async sendBatch(messages: OutgoingMessage[]): Promise<BatchResult[]> {
    if (messages.length < 1 || messages.length > MAX_BATCH) throw new RangeError(`a batch holds 1-${MAX_BATCH} messages, not ${messages.length}`);
    const body = await this.retrying(() => (this.opts.nats ? this.natsRequest('send.batch', { messages }) : this.http('POST', '/v1/messages/batch', { messages }, [200])), true);
    const results = (body as { results?: unknown[] }).results ?? [];
    return results.map((r) => {
      const res = r as { id?: string; status?: SendResult['status']; error?: unknown };
      return res.error ? { ...(res.id ? { id: res.id } : {}), error: errorFromAnswer(res) } : { id: res.id!, status: res.status! };
    });
  }

  /** `POST /v1/users/{user}/read` (section 4, read sync): the user read these messages. */
  async read(user: string, ids: string[]): Promise<void> {
    await this.retrying(() => this.http('POST', `/v1/users/${encodeURIComponent(user)}/read`, { ids }, [200, 204]));
  }

  /** `GET /v1/users/{user}/policy` (section 4). */
  getPolicy(user: string): Promise<DeliveryPolicy> {
    return this.retrying(() => this.http('GET', `/v1/users/${encodeURIComponent(user)}/policy`, undefined, [200])) as Promise<DeliveryPolicy>;
  }

  /** `PUT /v1/users/{user}/policy` (section 4); answers the stored policy. */
  setPolicy(user: string, policy: DeliveryPolicy): Promise<DeliveryPolicy> {
    return this.retrying(() => this.http('PUT', `/v1/users/${encodeURIComponent(user)}/policy`, policy, [200])) as Promise<DeliveryPolicy>;
  }

  /** `GET /v1/users/{user}`: presence, devices, and (v1.1) policy, held, unread. */
  getUser(user: string): Promise<Record<string, unknown>> {
    return this.retrying(() => this.http('GET', `/v1/users/${encodeURIComponent(user)}`, undefined, [200])) as Promise<Record<string, unknown>>;
  }

  private async httpSend(message: OutgoingMessage): Promise<SendResult> {
    return (await this.http('POST', '/v1/messages', message, [200, 202])) as SendResult;
  }

  private async natsSend(message: OutgoingMessage): Promise<SendResult> {
    const body = (await this.natsRequest('send', message)) as { id: string; status: SendResult['status'] };
    return { id: body.id, status: body.status };
  }

  /** A MessagePack request on `<prefix>.<suffix>`; an `{"error"}` answer throws it typed. */
  private async natsRequest(suffix: string, payload: unknown): Promise<unknown> {
    const { connection, subjectPrefix = 'switchboard', timeoutMs = DEFAULT_ATTEMPT_TIMEOUT_MS } = this.opts.nats!;
    let data: Uint8Array;
    try {
      ({ data } = await connection.request(`${subjectPrefix}.${suffix}`, packr.pack(payload), { timeout: timeoutMs }));
    } catch (e) {
      // Timeout or no responders: the message may or may not be accepted (a timeout); a retry with the same id finds out.
      throw new SwitchboardApiError('transport', `NATS request on ${subjectPrefix}.${suffix} failed: ${causeChain(e)}`, undefined, true, { cause: e });
    }
    const body = packr.unpack(data) as { error?: unknown };
    if (body.error) throw errorFromAnswer(body);
    return body;
  }

  private async http(method: string, path: string, body: unknown, okStatuses: number[]): Promise<unknown> {
    const http = this.opts.http;
    if (!http) throw new TypeError(`${method} ${path} needs the http options`);
    let res: Response;
    try {
      res = await fetch(http.url.replace(/\/$/, '') + path, {
        method,
        headers: { authorization: `Bearer ${http.apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(http.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS),
      });
    } catch (e) {
      throw new SwitchboardApiError('transport', `HTTP ${method} ${http.url.replace(/\/$/, '')}${path} failed: ${causeChain(e)}`, undefined, true, { cause: e });
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!okStatuses.includes(res.status)) throw errorFromAnswer(parsed, res.status);
    return parsed;
  }

  /** `sends`: the call sends messages, so an attempt that may have been accepted decides the final error (see `send`). */
  private async retrying<T>(call: () => Promise<T>, sends = false): Promise<T> {
    const { attempts = 5, initialMs = 200, maxMs = 5000 } = this.opts.retry ?? {};
    let mayBeAccepted: SwitchboardApiError | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (e) {
        const err = asApiError(e);
        const unknownNow = sends && ((err.code === 'transport' && !NOT_SENT_CAUSE.test(err.message)) || err.code === 'outcome_unknown');
        if (unknownNow) mayBeAccepted ??= err;
        if (!err.temporary || attempt >= attempts) {
          // The last error already says the outcome is unknown (a timeout, a 504), or no attempt could have been accepted.
          if (unknownNow || mayBeAccepted === undefined || !err.temporary) throw err;
          throw new SwitchboardApiError('outcome_unknown', `no attempt was answered accepted, and one may have been (${mayBeAccepted.message}); the last: ${err.message}. Send it again with the same id`, err.status, true, { cause: err });
        }
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(maxMs, initialMs * 2 ** (attempt - 1))));
      }
    }
  }
}

/** Section 4's per-user delivery policy. */
export interface DeliveryPolicy {
  mobile: 'when_away' | 'always' | 'never';
  idleAfterSeconds?: number;
  pushDelaySeconds?: number;
  quietHours?: { start: string; end: string; tz: string };
}

function asApiError(e: unknown): SwitchboardApiError {
  if (e instanceof SwitchboardApiError) return e;
  return new SwitchboardApiError('internal', e instanceof Error ? e.message : String(e), undefined, false, { cause: e });
}

/**
 * An error's message with those of its causes: `fetch failed (connect ECONNREFUSED 127.0.0.1:7400)`, where
 * undici's own message alone says nothing of what went wrong. At most 3 levels.
 */
function causeChain(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur !== undefined && cur !== null && depth < 3; depth++) {
    parts.push(describeError(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts[0] + parts.slice(1).map((p) => ` (${p})`).join('');
}

/**
 * One error's text. A dual-stack `localhost` fails as an `AggregateError` with an empty message (one error per
 * address tried, Node's happy eyeballs): its errors' messages, else its code.
 */
function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.message !== '') return e.message;
  const inner = e instanceof AggregateError ? e.errors.map((x) => (x instanceof Error ? x.message : String(x))).filter(Boolean) : [];
  return inner.length > 0 ? inner.join('; ') : String((e as { code?: unknown }).code ?? e.name);
}

