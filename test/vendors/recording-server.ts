import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { testTls } from './test-tls.js';

/** One request a vendor test server received, kept for assertions. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Raw body (utf8; Web Push bodies are binary and kept in `raw`). */
  body: string;
  raw: Buffer;
  /** Parsed JSON or form body, when the server understood it. */
  parsed?: unknown;
  /** What the server answered (status), or 'dropped'. */
  answer?: number | 'dropped';
  at: number;
}

/** What a vendor test server does with the next requests, common to all three. */
export interface CommonBehavior {
  /** Hold each answer this long: a slow vendor. Default 0. */
  delayMs?: number;
  /** Apply the behaviour to this many requests, then answer normally again. Default: until changed. */
  times?: number;
}

export interface RecordingServer {
  origin: string;
  /** PEM of the CA that signed the server certificate (TLS servers only): pass as the sender's `ca`. */
  ca?: string;
  /** The same CA as a file, for NODE_EXTRA_CA_CERTS of a child process (a benchmarked node). */
  caFile?: string;
  requests: RecordedRequest[];
  /** Connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections(): number;
  /** Answers `res` after `delayMs`, unless the server closes first. */
  later(delayMs: number, fn: () => void): void;
  close(): Promise<void>;
}

export type Handler = (req: RecordedRequest, res: http.ServerResponse, drop: () => void) => void;

/**
 * A loopback HTTP/1.1 server (plain or TLS) that buffers each request body, records it and hands it to `handler`.
 * `record: false` keeps nothing (benchmarks).
 */
export async function startRecordingServer(handler: Handler, options: { tls?: boolean; record?: boolean } = {}): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const record = options.record ?? true;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: raw.toString('utf8'), raw, at: Date.now() };
      if (record) requests.push(rec);
      res.on('finish', () => { rec.answer = res.statusCode; });
      handler(rec, res, () => {
        rec.answer = 'dropped';
        req.socket.destroy();
      });
    });
  };
  const tls = options.tls ? testTls() : undefined;
  const server = tls ? https.createServer({ key: tls.keyPem, cert: tls.certPem }, onRequest) : http.createServer(onRequest);
  let connections = 0;
  server.on(tls ? 'secureConnection' : 'connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    ...(tls ? { ca: tls.caPem, caFile: tls.caFile } : {}),
    requests,
    connections: () => connections,
    later(delayMs, fn) {
      if (delayMs <= 0) return fn();
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, delayMs);
      timers.add(t);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function answerJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Counts down `times` for a behaviour; returns whether the behaviour applies to this request. */
export class BehaviorSlot<B extends CommonBehavior> {
  private remaining = Infinity;
  constructor(private current: B) {}

  set(b: B): void {
    this.current = b;
    this.remaining = b.times ?? Infinity;
  }

  /** The behaviour for the next request, or `fallback` once `times` is used up. */
  take(fallback: B): B {
    if (this.remaining <= 0) return fallback;
    this.remaining--;
    return this.current;
  }

  peek(): B {
    return this.current;
  }
}
