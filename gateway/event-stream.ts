import type { ServerResponse } from 'node:http';
import type { Clock, Timer } from '../base/clock.js';
import type { TokenRemovedEvent } from '../protocol/index.js';

/** How often an idle event stream gets a comment line, ms, so proxies and load balancers do not cut it. */
export const EVENT_KEEPALIVE_MS = 15_000;
/**
 * Bytes an event stream may hold unsent (its client reads too slowly) before it is cut off, as a WebSocket client that
 * does not read is (SWITCHBOARD_SEND_BUFFER_BYTES): the node's memory is not the slow client's queue.
 */
export const EVENT_STREAM_MAX_BUFFERED_BYTES = 1 << 20;

/** Where the node's `token_removed` events come from: the embedded bus, or NATS in the cluster. */
export interface EventSource {
  /** Calls `onEvent` for each event from now on; returns the unsubscribe. */
  subscribe(onEvent: (e: TokenRemovedEvent) => void): () => void;
}

/**
 * Starts a server-sent events response on `res` (status, headers, the client's `retry` in ms). Returns false for a
 * HEAD request: it got the stream's headers and an ended response, and is no stream.
 */
export function startEventStream(res: ServerResponse, retryMs: number): boolean {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-store',
    'x-accel-buffering': 'no',
  });
  if (res.req?.method === 'HEAD') {
    res.end();
    return false;
  }
  res.write(`retry: ${retryMs}\n\n`);
  return true;
}

/**
 * `GET /v1/events` (bearer key): PROTOCOL.md section 3's `token_removed` events (`{"user","device","os","reason"}`)
 * as server-sent events, `event: token_removed`, for chat servers that talk HTTP only. The contract publishes them on
 * NATS (`switchboard.events.token_removed`), which an embedded node does not have; in the cluster a gateway streams
 * every node's (it listens on NATS while a stream is open). What the contract leaves out stays out: never a token.
 * Events of the time no stream was open are not kept (the same as a NATS subscription).
 */
export class EventStream {
  private readonly streams = new Set<ServerResponse>();
  private unsubscribe?: () => void;
  private keepAlive?: Timer;

  constructor(private readonly opts: { source: EventSource; clock: Clock }) {}

  open(res: ServerResponse): void {
    if (!startEventStream(res, 5000)) return;
    this.streams.add(res);
    this.unsubscribe ??= this.opts.source.subscribe((e) => this.send('token_removed', e));
    this.armKeepAlive();
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size > 0) return;
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      if (this.keepAlive) this.opts.clock.clearTimeout(this.keepAlive);
      this.keepAlive = undefined;
    });
  }

  /** Ends every open stream (node stopping). */
  close(): void {
    for (const res of [...this.streams]) res.end();
  }

  get listeners(): number {
    return this.streams.size;
  }

  private send(event: string, data: TokenRemovedEvent): void {
    const { user, device, os, reason } = data; // what section 3 lists, whatever else the source carried
    this.write(`event: ${event}\ndata: ${JSON.stringify({ user, device, os, reason })}\n\n`);
  }

  private write(text: string): void {
    for (const res of this.streams) {
      if (res.writableLength > EVENT_STREAM_MAX_BUFFERED_BYTES) res.destroy(); // a client that does not read
      else res.write(text);
    }
  }

  private armKeepAlive(): void {
    if (this.keepAlive) return;
    this.keepAlive = this.opts.clock.setTimeout(() => {
      this.keepAlive = undefined;
      if (this.streams.size === 0) return;
      this.write(': keep-alive\n\n');
      this.armKeepAlive();
    }, EVENT_KEEPALIVE_MS);
  }
}
