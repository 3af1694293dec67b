import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwitchboardError, invalid, isId, parseJsonUtf8 } from '../protocol/index.js';

/** Which declared media types a body reader takes; a body without a Content-Type is always taken as JSON. */
export interface BodyOptions {
  /**
   * Read the body as JSON whatever type it declares (`text/plain`, what `fetch` declares for a string body;
   * `application/x-www-form-urlencoded`, what `curl -d` declares): section 3 lists no 415 among the answers of its
   * calls, so a JSON body is taken and anything else is 400 `bad_json`. Only for calls that need the bearer key: a
   * cross-site form or no-cors fetch (the requests that may carry such types without a CORS preflight) cannot set an
   * `Authorization` header, and the preflight that would allow one is never granted here, so no other site can make a
   * browser post one of these keyed. Default false: the playground API, which has no key, refuses any type but JSON (415).
   */
  readonly anyType?: boolean;
  /**
   * A body must declare a JSON type: a missing Content-Type is refused (415) instead of taken as JSON. For calls without
   * a key that a browser page may reach (the playground API): declaring `application/json` from another origin needs a
   * CORS preflight, which is never granted here.
   */
  readonly declared?: boolean;
}

/**
 * Reads a JSON body of at most `limit` bytes. Past the limit nothing more is kept: the rest is thrown away as it
 * comes (up to DISCARD_MAX_BYTES, so the client reads its 413), so a huge or endless body never sits in memory.
 */
export function readJsonBody(req: IncomingMessage, limit: number, options?: BodyOptions): Promise<unknown> {
  return new Promise((resolve, reject) => readJson(req, limit, (error, body) => (error === undefined ? resolve(body) : reject(error)), options));
}

/** Called once with the parsed body, or with the error (`SwitchboardError`, or the request stream's own error). */
export type BodyCallback = (error: Error | undefined, body?: unknown) => void;

/**
 * `readJsonBody` without a promise: errors as `readBody`'s, then `invalid_field` for text that is not UTF-8 (section 3)
 * and `bad_json`; `done` is called exactly once, never synchronously.
 */
export function readJson(req: IncomingMessage, limit: number, done: BodyCallback, options?: BodyOptions): void {
  readBody(req, limit, (error, bytes) => {
    if (error !== undefined) return done(error);
    let body: unknown;
    try {
      // Strict UTF-8 (section 3: a body that is not valid UTF-8 is refused with invalid_field), then JSON.
      body = parseJsonUtf8(bytes!);
    } catch (e) {
      return done(e as Error);
    }
    done(undefined, body);
  }, options);
}

/** Called once with the body's bytes, or with the error (`SwitchboardError`, or the request stream's own error). */
export type BytesCallback = (error: Error | undefined, bytes?: Buffer) => void;

/**
 * The raw body of at most `limit` bytes, for the message endpoints (which decode it as section 3 says): 415
 * `unsupported_media_type` for a declared type that is not JSON where types are checked (`BodyOptions`), 413 `body_too_large` past the
 * limit, declared or streamed. `done` is called exactly once, never synchronously.
 */
export function readBody(req: IncomingMessage, limit: number, done: BytesCallback, options?: BodyOptions): void {
  const contentType = req.headers['content-type'];
  if (contentType === undefined && options?.declared === true) {
    return void process.nextTick(done, new SwitchboardError('unsupported_media_type', 'no Content-Type; declare application/json'));
  }
  if (contentType !== undefined && options?.anyType !== true && !isJsonMediaType(contentType)) {
    return void process.nextTick(done, new SwitchboardError('unsupported_media_type', `got ${JSON.stringify(contentType.slice(0, 64))}`));
  }
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    // Refused from its header. Sent with `Expect: 100-continue`, the body never comes (no 100 is sent); else the
    // client is sending it already and reads our answer only once it is through, so it is read and thrown away.
    if (!awaitingContinue.has(req)) discardRest(req, declared);
    return void process.nextTick(done, tooLarge(limit));
  }
  continueBody(req);
  let first: Buffer | undefined; // most bodies arrive in one chunk: kept as is, no copy
  let chunks: Buffer[] | undefined;
  let size = 0;
  let settled = false;
  const settle = (error: Error | undefined, bytes?: Buffer): void => {
    settled = true;
    req.off('data', onData);
    done(error, bytes);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      req.off('data', onData);
      discardRest(req, size);
      return settle(tooLarge(limit));
    }
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
  };
  req.on('data', onData);
  req.once('end', () => {
    if (!settled) settle(undefined, chunks !== undefined ? Buffer.concat(chunks, size) : (first ?? EMPTY));
  });
  // Stays attached once settled: a late error of the request stream must not go unhandled.
  req.on('error', (e) => {
    if (!settled) settle(e);
  });
}

const EMPTY = Buffer.alloc(0);

/**
 * How much of a body over its limit is read and thrown away, so that its client, which sends the whole body before it
 * reads an answer, gets the 413: a connection closed under a client still sending resets it, and the client sees
 * EPIPE or ECONNRESET instead of `body_too_large` (a 9 MiB batch through Node's fetch did). A larger body is refused
 * unread and the connection closed after the 413 (then that client may see the reset).
 */
export const DISCARD_MAX_BYTES = 16 * 1024 * 1024;

/** Requests whose body over the limit is being thrown away: their connection stays open for the client to finish. */
const discarding = new WeakSet<IncomingMessage>();

/** Reads the rest of a body over its limit into nothing, up to DISCARD_MAX_BYTES in all (`seen` counted already). */
function discardRest(req: IncomingMessage, seen: number): void {
  if (seen > DISCARD_MAX_BYTES) return;
  discarding.add(req);
  let left = DISCARD_MAX_BYTES - seen;
  req.on('data', (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) req.socket.destroy();
  });
  req.resume();
}

/** Requests that asked `Expect: 100-continue`, with the answer that sends the 100 once their body is wanted. */
const awaitingContinue = new WeakMap<IncomingMessage, ServerResponse>();

/**
 * The server's `checkContinue` handler calls this before serving the request: the `100 Continue` then goes out only
 * when a body within its limit is read (`readBody`), so a body refused from its header (413, or 401, 404, …) is never
 * sent at all. Node sent the 100 itself, before the request was looked at, and the client then sent a body the node
 * would not read, under a connection it closed (curl: "Send failure: Broken pipe", no 413).
 */
export function deferContinue(req: IncomingMessage, res: ServerResponse): void {
  awaitingContinue.set(req, res);
}

function continueBody(req: IncomingMessage): void {
  const res = awaitingContinue.get(req);
  if (res === undefined) return;
  awaitingContinue.delete(req);
  res.writeContinue();
}

/** The detail of a 503 `unavailable` for a message refused while the node is not ready (`isReady()` false). */
export const NOT_READY = 'the node is not ready to accept messages (starting, or its store or NATS unavailable)';

/**
 * A declared JSON type: `application/json`, `application/*+json` (RFC 6839). Where a type is checked (not `anyType`,
 * see BodyOptions), a missing one is taken as JSON (simple clients) unless `declared`; a declared other type is 415.
 */
function isJsonMediaType(header: string): boolean {
  if (header === 'application/json') return true; // what nearly every client sends
  const type = header.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function tooLarge(limit: number): SwitchboardError {
  return new SwitchboardError('body_too_large', `the limit is ${limit} bytes`);
}

const JSON_TYPE = 'application/json; charset=utf-8';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** `sendJson` for a body already serialized (the message endpoints build their small answers by hand). */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers?: Record<string, string>): void {
  const base = { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) };
  res.writeHead(status, headers === undefined ? base : { ...base, ...headers });
  res.end(text);
}

/**
 * The head of a JSON answer without its body, for a HEAD request whose body would cost work to build only to be
 * dropped: `Content-Length` is left out, as RFC 9110 section 9.3.2 allows for HEAD (the length is not known unbuilt).
 */
export function sendJsonHead(res: ServerResponse, status: number, headers?: Record<string, string>): void {
  res.writeHead(status, { 'content-type': JSON_TYPE, ...headers });
  res.end();
}

/** Section 3 error body `{"error":{"code","message"}}` with the code's status. */
export function sendError(res: ServerResponse, error: SwitchboardError, headers?: Record<string, string>): void {
  // The rest of an oversize body is not read (too large to throw away): the connection cannot be reused.
  const extra = error.code === 'body_too_large' && !discarding.has(res.req) ? { connection: 'close', ...headers } : headers;
  sendJson(res, error.status, { error: error.toBody() }, extra);
}

/** A percent-encoded path segment holding a user or device id (1-128 printable characters). */
export function pathId(segment: string, field: string): string {
  let value: string;
  try {
    value = decodeURIComponent(segment);
  } catch {
    throw invalid(field, 'percent-encoded UTF-8');
  }
  if (!isId(value)) throw invalid(field, 'a string of 1-128 printable characters');
  return value;
}
