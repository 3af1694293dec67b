import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwitchboardError, invalid, isId, parseJsonUtf8 } from '../protocol/index.js';

/**
 * Reads a JSON body of at most `limit` bytes. Past the limit it stops reading at once (the connection is
 * closed after the 413), so a huge or endless body never sits in memory.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => readJson(req, limit, (error, body) => (error === undefined ? resolve(body) : reject(error))));
}

/** Called once with the parsed body, or with the error (`SwitchboardError`, or the request stream's own error). */
export type BodyCallback = (error: Error | undefined, body?: unknown) => void;

/**
 * `readJsonBody` without a promise, for the message endpoints: errors as `readJsonBody`'s (415, 413, `invalid_field`
 * for text that is not UTF-8, `bad_json`); `done` is called exactly once, never synchronously.
 */
export function readJson(req: IncomingMessage, limit: number, done: BodyCallback): void {
  const contentType = req.headers['content-type'];
  if (contentType !== undefined && !isJsonMediaType(contentType)) {
    return void process.nextTick(done, new SwitchboardError('unsupported_media_type', `got ${JSON.stringify(contentType.slice(0, 64))}`));
  }
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return void process.nextTick(done, tooLarge(limit));
  let first: Buffer | undefined; // most bodies arrive in one chunk: kept as is, no copy
  let chunks: Buffer[] | undefined;
  let size = 0;
  let settled = false;
  const settle = (error: Error | undefined, body?: unknown): void => {
    settled = true;
    req.off('data', onData);
    done(error, body);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      req.pause();
      return settle(tooLarge(limit));
    }
    if (first === undefined) first = chunk;
    else (chunks ??= [first]).push(chunk);
  };
  req.on('data', onData);
  req.once('end', () => {
    if (settled) return;
    let body: unknown;
    try {
      // Strict UTF-8 (section 3: a body that is not valid UTF-8 is refused with invalid_field), then JSON.
      body = parseJsonUtf8(chunks !== undefined ? Buffer.concat(chunks, size) : (first ?? EMPTY));
    } catch (e) {
      return settle(e as Error);
    }
    settle(undefined, body);
  });
  // Stays attached once settled: a late error of the request stream must not go unhandled.
  req.on('error', (e) => {
    if (!settled) settle(e);
  });
}

const EMPTY = Buffer.alloc(0);

/** A missing content type is taken as JSON (simple clients); a declared other type is refused (415). */
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
  // The rest of an oversize body is never read, so the connection cannot be reused.
  const extra = error.code === 'body_too_large' ? { connection: 'close', ...headers } : headers;
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
