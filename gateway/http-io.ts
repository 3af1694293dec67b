import type { IncomingMessage, ServerResponse } from 'node:http';
import { SwitchboardError, invalid, isId, parseJsonUtf8 } from '../protocol/index.js';

/**
 * Reads a JSON body of at most `limit` bytes. Past the limit it stops reading at once (the connection is
 * closed after the 413), so a huge or endless body never sits in memory.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const contentType = req.headers['content-type'];
  if (contentType !== undefined && !isJsonMediaType(contentType)) {
    return Promise.reject(new SwitchboardError('unsupported_media_type', `got ${JSON.stringify(contentType.slice(0, 64))}`));
  }
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      try {
        // Strict UTF-8 (section 3: a body that is not valid UTF-8 is refused with invalid_field), then JSON.
        resolve(parseJsonUtf8(Buffer.concat(chunks)));
      } catch (e) {
        reject(e);
      }
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** A missing content type is taken as JSON (simple clients); a declared other type is refused (415). */
function isJsonMediaType(header: string): boolean {
  const type = header.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function tooLarge(limit: number): SwitchboardError {
  return new SwitchboardError('body_too_large', `the limit is ${limit} bytes`);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Section 3 error body `{"error":{"code","message"}}` with the code's status. */
export function sendError(res: ServerResponse, error: SwitchboardError, headers: Record<string, string> = {}): void {
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
