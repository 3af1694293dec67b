import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DECISIONS_PER_USER, DEFAULT_POLICY, ERRORS, asStoreFailure, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, MAX_SEND_READ_BYTES, SwitchboardError, asProtocolError, decodeBatchRequest,
  decodeDeviceRegistration, decodePolicy, decodeSendBytes, invalid, isObject, readIds, type BusMessage, type ChatMessage, type ErrorCode,
} from '../protocol/index.js';
import type { AcceptResult } from '../store/types.js';
import { bearerCheck } from './auth.js';
import { acceptBatch } from './batch.js';
import type { HttpApiDeps } from './deps.js';
import { NOT_READY, pathId, readBody, readJson, readJsonBody, sendError, sendJson, sendJsonHead, sendJsonText, type BodyOptions } from './http-io.js';
import { OperatorEndpoints } from './operator-endpoints.js';
import { createPageRoutes } from './page-routes.js';
import { checkRegistration } from './registration-rules.js';

export type { HttpApiDeps } from './deps.js';

/** How long a user query waits for the owner of the user's partition. */
export const OWNER_QUERY_TIMEOUT_MS = 5000;
/**
 * `GET …/decisions` without `limit`: every decision kept (section 3: "at least the last 100 decisions are kept"; a
 * node keeps DECISIONS_PER_USER). A larger `limit` is taken and answered with what is kept.
 */
export const DEFAULT_DECISIONS_LIMIT = DECISIONS_PER_USER;

/** Answers the request, or throws / rejects with the error to answer; the message endpoints answer through callbacks. */
type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], query: URLSearchParams) => Promise<void> | void;

/** Label of the messages accepted over HTTP (one object, not one per request). */
const FROM_HTTP = { source: 'http' } as const;
const NO_STORE = { 'cache-control': 'no-store' };
/** The query of a URL without one; handlers only read it. */
const NO_QUERY = new URLSearchParams();
/** Every body under /v1 is read with this: those calls need the bearer key, so any declared type is read as JSON (BodyOptions). */
const KEYED: BodyOptions = { anyType: true };

/** The HTTP API of PROTOCOL.md section 3, plus the operator endpoints that need no key. */
export function createHttpApi(deps: HttpApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { bus, subjects, ingress, registry, policies, metrics, clock } = deps;
  const authorized = bearerCheck(deps.apiKey);
  const operator = new OperatorEndpoints({ ...deps, isStopping: deps.isAnnouncedStopping ?? deps.isStopping });
  const isReady = (): boolean => operator.isReady();

  /** `ingress.accept`, with a synchronous throw turned into a rejection (as `await` did). */
  const accept = (msg: ChatMessage): Promise<AcceptResult> => {
    try {
      return ingress.accept(msg);
    } catch (e) {
      return Promise.reject(e);
    }
  };

  /**
   * Section 3 `POST /v1/messages`: 202 once durable, 200 `duplicate`. The hottest path of the node, written with
   * callbacks: one body read, one decode, one accept promise, one write per request. Decoded as a NATS send is
   * (`decodeSendBytes`): a body over MAX_MESSAGE_BYTES is still read up to MAX_SEND_READ_BYTES, to answer 413
   * payload_too_large rather than body_too_large when the message in it could never be pushed (`oversizeSendError`).
   */
  const postMessage: Handler = (req, res) => {
    if (!isReady()) throw new SwitchboardError('unavailable', NOT_READY);
    readBody(req, MAX_SEND_READ_BYTES, answered<Buffer>(req, res, (bytes) => {
      const decoded = decodeSendBytes(bytes, 'json', clock.now());
      if (!decoded.ok) return answerFailure(req, res, decoded.error);
      const { id } = decoded.value;
      accept(decoded.value).then((result) => {
        try {
          if (result === 'duplicate') {
            metrics.messagesDuplicate.inc();
            sendJsonText(res, 200, statusBody(id, 'duplicate'));
          } else {
            metrics.messagesAccepted.inc(FROM_HTTP);
            sendJsonText(res, 202, statusBody(id, 'accepted'));
          }
        } catch (e) {
          answerFailure(req, res, e);
        }
      }, (e: unknown) => answerFailure(req, res, asStoreFailure(e)));
    }), KEYED);
  };

  /** Section 3: 1-500 messages, one result each in order, answered once every accepted one is durable. */
  const postBatch: Handler = (req, res) => {
    if (!isReady()) throw new SwitchboardError('unavailable', NOT_READY);
    readJson(req, MAX_BATCH_BYTES, answered<unknown>(req, res, (body) => {
      const decoded = decodeBatchRequest(body, clock.now());
      if (!decoded.ok) return answerFailure(req, res, decoded.error);
      // Counted once per request, not once per message.
      let accepted = 0;
      let duplicates = 0;
      acceptBatch(decoded.value, (msgs) => ingress.acceptMany(msgs), (status) => (status === 'duplicate' ? duplicates++ : accepted++))
        .then((results) => {
          if (accepted > 0) metrics.messagesAccepted.inc(FROM_HTTP, accepted);
          if (duplicates > 0) metrics.messagesDuplicate.inc(duplicates);
          sendJson(res, 200, { results });
        })
        .catch((e: unknown) => answerFailure(req, res, e));
    }), KEYED);
  };

  /**
   * The callback of a body reader that runs `handle` on the body; a read error or anything `handle` throws is
   * answered. The message endpoints use this instead of async functions: one body read, one decode, one accept
   * promise, one write.
   */
  function answered<T>(req: IncomingMessage, res: ServerResponse, handle: (body: T) => void): (error: Error | undefined, body?: T) => void {
    return (error, body) => {
      if (error !== undefined) return answerFailure(req, res, error);
      try {
        handle(body as T);
      } catch (e) {
        answerFailure(req, res, e);
      }
    };
  }

  /** Section 3/4: the user's policy, the default when none was stored. */
  const getPolicy: Handler = async (_req, res, [rawUser]) => {
    const user = pathId(rawUser, 'user');
    sendJson(res, 200, (await storeWrite(() => policies.get(user))) ?? DEFAULT_POLICY);
  };

  /** Replaces the policy (durable), then tells the owner to read it again; answers the policy as stored. */
  const putPolicy: Handler = async (req, res, [rawUser]) => {
    const user = pathId(rawUser, 'user');
    const decoded = decodePolicy(await readJsonBody(req, MAX_MESSAGE_BYTES, KEYED));
    if (!decoded.ok) throw decoded.error;
    await storeWrite(() => policies.put(user, decoded.value));
    bus.publish(subjects.owner(user), { type: 'policy_changed', user });
    sendJson(res, 200, decoded.value);
  };

  const putDevice: Handler = async (req, res, [rawUser, rawDevice]) => {
    const user = pathId(rawUser, 'user');
    const device = pathId(rawDevice, 'device');
    const decoded = decodeDeviceRegistration(await readJsonBody(req, MAX_MESSAGE_BYTES, KEYED));
    if (!decoded.ok) throw decoded.error;
    const reg = decoded.value;
    checkRegistration(reg, deps.registration);
    // Section 3: the registry takes the token from any other (user, device) and reports it (token_removed).
    await storeWrite(() => registry.put(user, device, reg));
    bus.publish(subjects.owner(user), { type: 'device_put', user, device, ...reg });
    sendJson(res, 200, { user, device, os: reg.os, hasToken: true });
  };

  const deleteDevice: Handler = async (_req, res, [rawUser, rawDevice]) => {
    const user = pathId(rawUser, 'user');
    const device = pathId(rawDevice, 'device');
    await storeWrite(() => registry.remove(user, device));
    bus.publish(subjects.owner(user), { type: 'device_delete', user, device });
    res.writeHead(204).end();
  };

  const getUser: Handler = async (_req, res, [rawUser]) => {
    const user = pathId(rawUser, 'user');
    const reply = await bus.request(subjects.query(user), { type: 'user_query', user }, OWNER_QUERY_TIMEOUT_MS);
    if (reply.type === 'user_view') return sendJson(res, 200, reply.view);
    throw replyError(reply);
  };

  const getDecisions: Handler = async (_req, res, [rawUser], query) => {
    const user = pathId(rawUser, 'user');
    const limit = decisionsLimit(query.get('limit'));
    const reply = await bus.request(subjects.query(user), { type: 'decisions_query', user, limit }, OWNER_QUERY_TIMEOUT_MS);
    if (reply.type === 'decisions') return sendJson(res, 200, { decisions: reply.decisions });
    throw replyError(reply);
  };

  /** Section 3 `POST /v1/users/{u}/read` `{"ids"}`: as the read frame; answered once the read is durable. */
  const postRead: Handler = async (req, res, [rawUser]) => {
    const user = pathId(rawUser, 'user');
    const body = await readJsonBody(req, MAX_MESSAGE_BYTES, KEYED);
    let ids: string[];
    try {
      if (!isObject(body)) throw invalid('body', 'a JSON object');
      ids = readIds(body);
    } catch (e) {
      throw asProtocolError(e);
    }
    const reply = await bus.request(subjects.query(user), { type: 'read_query', user, ids }, OWNER_QUERY_TIMEOUT_MS);
    if (reply.type === 'read_done') return sendJson(res, 200, { user, read: ids.length, unread: reply.unread });
    throw replyError(reply);
  };
  /** HEAD answers the headers alone: the figures are a metrics sample (and, in a cluster, a gather from every node). */
  const getDashboard: Handler = async (req, res) => {
    if (req.method === 'HEAD') return sendJsonHead(res, 200, NO_STORE);
    sendJson(res, 200, await deps.dashboard.figures(), NO_STORE);
  };
  const streamDashboard: Handler = async (_req, res) => deps.dashboard.open(res);
  /** Section 3's token_removed events as server-sent events (gateway/event-stream.ts). */
  const streamEvents: Handler = async (_req, res) => {
    if (!deps.eventStream) throw new SwitchboardError('not_found');
    deps.eventStream.open(res);
  };

  const notAWebSocket: Handler = async () => {
    throw new SwitchboardError('invalid_request', 'GET /v1/ws needs a WebSocket upgrade');
  };

  /**
   * Routes under /v1, by path shape; `:id` segments are passed to the handler still percent-encoded. Every route
   * needs the API key but `ws`: WebSocket clients authenticate with the hello's JWT (section 2), so a plain GET there
   * learns that it needs an upgrade, not that it lacks a key it never needs.
   */
  const routes: { pattern: string[]; methods: Record<string, Handler>; noApiKey?: true }[] = [
    { pattern: ['messages'], methods: { POST: postMessage } },
    { pattern: ['messages', 'batch'], methods: { POST: postBatch } },
    { pattern: ['users', ':id', 'policy'], methods: { GET: getPolicy, PUT: putPolicy } },
    { pattern: ['users', ':id'], methods: { GET: getUser } },
    { pattern: ['users', ':id', 'decisions'], methods: { GET: getDecisions } },
    { pattern: ['users', ':id', 'read'], methods: { POST: postRead } },
    { pattern: ['users', ':id', 'devices', ':id'], methods: { PUT: putDevice, DELETE: deleteDevice } },
    { pattern: ['ws'], methods: { GET: notAWebSocket }, noApiKey: true },
    { pattern: ['dashboard'], methods: { GET: getDashboard } },
    { pattern: ['dashboard', 'stream'], methods: { GET: streamDashboard } },
    { pattern: ['events'], methods: { GET: streamEvents } },
  ];

  /** Throws (or rejects) with the error to answer. */
  function serveV1(req: IncomingMessage, res: ServerResponse, segments: string[], query: URLSearchParams): Promise<void> | void {
    if (deps.isStopping()) throw new SwitchboardError('shutting_down');
    const keyed = authorized(req.headers.authorization);
    for (const route of routes) {
      const params = matchRoute(route.pattern, segments);
      if (!params) continue;
      if (!keyed && !route.noApiKey) break;
      // HEAD is GET without the body (RFC 9110 section 9.3.2; node:http sends no body on a HEAD response itself).
      const handler = route.methods[req.method === 'HEAD' ? 'GET' : req.method ?? ''];
      if (!handler) return sendError(res, new SwitchboardError('method_not_allowed'), { allow: allowedMethods(route.methods) });
      return handler(req, res, params, query);
    }
    // Without the key, a path that is no route is answered 401 as well: what exists under /v1 is not told to strangers.
    if (!keyed) return sendError(res, new SwitchboardError('unauthorized'), { 'www-authenticate': 'Bearer' });
    throw new SwitchboardError('not_found');
  }

  /** Any failure of a request: its SwitchboardError answered, anything else a logged 500 (or a cut connection once headers went out). */
  function answerFailure(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    const error = e instanceof SwitchboardError ? e : new SwitchboardError('internal', undefined, { cause: e });
    if (error.code === 'internal') {
      const where = { err: e, method: req.method, path: (req.url ?? '/').split('?')[0] };
      // The client went away mid-body (the request stream's `aborted`, ECONNRESET): not a fault of the node, and no
      // one is left to answer. Debug, so operators' alerts on errors do not fire for every dropped client.
      if (clientGone(e)) {
        deps.log.debug(where, 'request aborted by the client');
        return void res.destroy();
      }
      deps.log.error(where, 'request failed');
    }
    if (!res.headersSent) sendError(res, error);
    else res.destroy();
  }

  const servePage = createPageRoutes(deps);

  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? NO_QUERY : new URLSearchParams(url.slice(q + 1));
    const failed = (e: unknown): void => answerFailure(req, res, e);
    if (path.startsWith('/v1/')) {
      let served: Promise<void> | void;
      try {
        served = serveV1(req, res, path.slice('/v1/'.length).split('/'), query);
      } catch (e) {
        return failed(e);
      }
      if (served !== undefined) served.catch(failed);
      return;
    }
    operator.serve(req, res, path)
      .then((done) => done || servePage(req, res, path, query))
      .then((done) => { if (!done) throw new SwitchboardError('not_found'); })
      .catch(failed);
  };
}

/** The `Allow` header of a route: its methods, with HEAD wherever GET is (served as GET without the body). */
function allowedMethods(methods: Record<string, unknown>): string {
  const names = Object.keys(methods);
  return (names.includes('GET') ? [...names, 'HEAD'] : names).join(', ');
}

function matchRoute(pattern: string[], segments: string[]): string[] | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: string[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === ':id') params.push(segments[i]);
    else if (pattern[i] !== segments[i]) return undefined;
  }
  return params;
}

/** `?limit=N`: a positive integer (section 3 sets no upper bound), capped at what is kept; else 400 invalid_request. */
function decisionsLimit(raw: string | null): number {
  if (raw === null) return DEFAULT_DECISIONS_LIMIT;
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1)) throw invalid('limit', 'a positive integer');
  return Math.min(n, DECISIONS_PER_USER);
}

/** A registry or policy store failure is a temporary 503 store_failed, whatever the store threw. */
async function storeWrite<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    throw asStoreFailure(e);
  }
}

/** `{"id":…,"status":…}` exactly as JSON.stringify writes it, without building the object. */
function statusBody(id: string, status: 'accepted' | 'duplicate'): string {
  return `{"id":${JSON.stringify(id)},"status":"${status}"}`;
}

function replyError(reply: BusMessage): SwitchboardError {
  if (reply.type !== 'error') return new SwitchboardError('internal', `unexpected owner reply ${reply.type}`);
  const code = (reply.code in ERRORS ? reply.code : 'unavailable') as ErrorCode;
  return new SwitchboardError(code, reply.message);
}

/** The request failed because its client closed the connection (the request stream's `aborted` error is ECONNRESET). */
function clientGone(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ECONNABORTED' || code === 'EPIPE';
}
