import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

/** What came back for one request: an HTTP answer, or nothing usable (connection lost, reset, timed out). */
export type ApnsExchange =
  | { kind: 'answer'; status: number; headers: IncomingHttpHeaders; body: string }
  /** `unprocessed`: APNs never saw the request (refused after a GOAWAY, or no stream opened): safe to send again at once. */
  | { kind: 'lost'; reason: string; unprocessed?: boolean };

/** Sends of one request on fresh connections when the previous connection refused it unprocessed (GOAWAY). */
export const MAX_UNPROCESSED_RESENDS = 10;

export interface ConnectionPoolOptions {
  /** `https://host[:port]`. */
  origin: string;
  /** Trust anchors replacing Node's for this origin (PEM); unset = Node's CAs plus NODE_EXTRA_CA_CERTS. */
  ca?: string | Buffer;
  /** HTTP/2 connections opened at most; a new one opens only when all others are full. */
  maxConnections: number;
  /** Requests in flight per connection at most (also capped by the server's SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerConnection: number;
  /** A request (from its stream opening) without a complete answer in this time counts as lost. */
  requestTimeoutMs: number;
  /** Idle connections are pinged this often; an unanswered ping closes the connection. 0 = never. */
  pingIntervalMs: number;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** One HTTP/2 connection and the number of requests it carries. */
class ApnsConnection {
  inFlight = 0;
  private retired = false;
  private pingOutstanding = false;
  private readonly timers: NodeJS.Timeout[] = [];
  readonly session: ClientHttp2Session;

  constructor(opts: ConnectionPoolOptions, private readonly onRetired: (c: ApnsConnection) => void) {
    this.session = http2.connect(opts.origin, { ca: opts.ca, settings: { enablePush: false } });
    this.session.unref();
    // Details of a failure reach the requests through their streams; the session only leaves the pool.
    this.session.on('error', () => this.retire());
    this.session.on('goaway', () => this.retire());
    this.session.on('close', () => this.retire());
    const connectTimer = setTimeout(() => {
      if (this.session.connecting) this.session.destroy(new Error(`no TLS connection within ${opts.requestTimeoutMs} ms`));
    }, opts.requestTimeoutMs);
    connectTimer.unref();
    this.timers.push(connectTimer);
    if (opts.pingIntervalMs > 0) {
      const ping = setInterval(() => this.ping(), opts.pingIntervalMs);
      ping.unref();
      this.timers.push(ping);
    }
  }

  get usable(): boolean {
    return !this.retired && !this.session.closed && !this.session.destroyed;
  }

  /** Free request slots: our own cap, lowered by the server's advertised stream limit once known. */
  room(cap: number): number {
    const peer = this.session.remoteSettings?.maxConcurrentStreams;
    return Math.min(cap, peer && peer > 0 ? peer : cap) - this.inFlight;
  }

  exchange(headers: OutgoingHttpHeaders, body: string, timeoutMs: number): Promise<ApnsExchange> {
    return new Promise((resolve) => {
      let settled = false;
      let stream: http2.ClientHttp2Stream | undefined;
      const finish = (result: ApnsExchange) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (result.kind === 'lost' && !this.usable) this.retire();
        resolve(result);
      };
      const timer = setTimeout(() => {
        finish({ kind: 'lost', reason: `no answer within ${timeoutMs} ms` });
        stream?.close(NGHTTP2_CANCEL);
      }, timeoutMs);
      try {
        stream = this.session.request(headers);
      } catch (err) {
        // The session is closing (GOAWAY) or gone: no stream was opened, so nothing reached APNs.
        this.retire();
        finish({ kind: 'lost', reason: describe(err), unprocessed: true });
        return;
      }
      // RFC 9113 section 6.8: a stream above the GOAWAY's last-stream-id was refused unprocessed (REFUSED_STREAM).
      const lost = (reason: string): ApnsExchange => (stream?.rstCode === NGHTTP2_REFUSED_STREAM
        ? { kind: 'lost', reason, unprocessed: true } : { kind: 'lost', reason });
      let status = 0;
      let answerHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        status = Number(h[':status']);
        answerHeaders = h;
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => finish(status > 0
        ? { kind: 'answer', status, headers: answerHeaders, body: Buffer.concat(chunks).toString('utf8') }
        : lost('stream ended without a status')));
      stream.on('error', (err) => finish(lost(describe(err))));
      stream.on('close', () => finish(lost(`stream closed (code ${stream?.rstCode ?? '?'})`)));
      stream.end(body);
    });
  }

  /** Leaves the pool; requests already on the connection finish (GOAWAY) or fail (dropped). */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    for (const t of this.timers) clearTimeout(t);
    this.onRetired(this);
  }

  close(): Promise<void> {
    this.retire();
    if (this.session.closed || this.session.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.session.close(() => resolve()));
  }

  // A dead TCP path (NAT timeout, silent peer) otherwise shows only as request timeouts.
  private ping(): void {
    if (!this.usable || this.session.connecting) return;
    if (this.pingOutstanding) {
      this.session.destroy(new Error('ping unanswered'));
      return;
    }
    this.pingOutstanding = true;
    this.session.ping((err) => {
      this.pingOutstanding = false;
      if (err && !this.session.destroyed) this.session.destroy(err);
    });
  }
}

/**
 * HTTP/2 connections to one APNs origin, shared by all sends of a sender. Each carries at most
 * `maxStreamsPerConnection` requests (Apple answers a flood with ENHANCE_YOUR_CALM); when all are full and no
 * more may open, requests wait here in order.
 */
export class ApnsConnectionPool {
  private readonly connections: ApnsConnection[] = [];
  private readonly waiting: ((c: ApnsConnection | undefined) => void)[] = [];
  private closed = false;
  /** Connections opened so far (each one TLS handshake). */
  opened = 0;
  /** Requests sent again because a connection refused them unprocessed (GOAWAY). */
  resent = 0;

  constructor(private readonly opts: ConnectionPoolOptions) {}

  /**
   * One request and its answer. A request the connection refused unprocessed (APNs sends GOAWAY now and then, e.g.
   * before maintenance) goes out again at once on another connection, up to MAX_UNPROCESSED_RESENDS times: a GOAWAY
   * costs neither a push nor a retry with backoff.
   */
  async exchange(headers: OutgoingHttpHeaders, body: string): Promise<ApnsExchange> {
    for (let resend = 0; ; resend++) {
      const result = await this.exchangeOnce(headers, body);
      if (result.kind === 'answer' || !result.unprocessed || resend >= MAX_UNPROCESSED_RESENDS || this.closed) return result;
      this.resent++;
    }
  }

  private async exchangeOnce(headers: OutgoingHttpHeaders, body: string): Promise<ApnsExchange> {
    const conn = this.take() ?? (this.closed ? undefined : await new Promise<ApnsConnection | undefined>((r) => this.waiting.push(r)));
    if (!conn) return { kind: 'lost', reason: 'sender closed' };
    try {
      return await conn.exchange(headers, body, this.opts.requestTimeoutMs);
    } finally {
      if (--conn.inFlight === 0) conn.session.unref();
      this.pump();
    }
  }

  get inFlight(): number {
    return this.connections.reduce((n, c) => n + c.inFlight, 0);
  }

  get queued(): number {
    return this.waiting.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w(undefined);
    await Promise.all([...this.connections].map((c) => c.close()));
  }

  /** A slot on the first connection with room (keeps traffic on few connections), or on a new one. */
  private take(): ApnsConnection | undefined {
    if (this.closed) return undefined;
    let conn = this.connections.find((c) => c.usable && c.room(this.opts.maxStreamsPerConnection) > 0);
    if (!conn && this.connections.length < this.opts.maxConnections) {
      conn = new ApnsConnection(this.opts, (gone) => this.forget(gone));
      this.connections.push(conn);
      this.opened++;
    }
    if (!conn) return undefined;
    if (conn.inFlight++ === 0) conn.session.ref();
    return conn;
  }

  private pump(): void {
    while (this.waiting.length > 0) {
      const conn = this.take();
      if (!conn) return;
      this.waiting.shift()!(conn);
    }
  }

  private forget(conn: ApnsConnection): void {
    const i = this.connections.indexOf(conn);
    if (i >= 0) this.connections.splice(i, 1);
    this.pump();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ? `${(err as NodeJS.ErrnoException).code}: ${err.message}` : err.message;
  return String(err);
}
