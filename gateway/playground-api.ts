import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignJWT } from 'jose';
import { MOBILE_OS, SwitchboardError, decodeSendRequest, invalid, isObject, type BusMessage } from '../protocol/index.js';
import type { HttpApiDeps } from './deps.js';
import { NOT_READY, readJsonBody, sendError, sendJson, type BodyOptions } from './http-io.js';
import { PLAYGROUND_USER, isLoopbackAddress, isLoopbackHostHeader, isSameOrigin } from './playground-access.js';

/** Lifetime of a playground client token. */
export const PLAYGROUND_TOKEN_SECONDS = 3600;
const MAX_BODY_BYTES = 16 * 1024;
const QUERY_TIMEOUT_MS = 5000;
/** The playground's POST bodies must say they are JSON (BodyOptions.declared): see createPlaygroundApi. */
const DECLARED_JSON: BodyOptions = { declared: true };

export type PlaygroundApiDeps = Pick<HttpApiDeps, 'bus' | 'subjects' | 'ingress' | 'metrics' | 'clock' | 'jwtSecret' | 'config' | 'isReady'>;

/**
 * The playground's loopback-only endpoints under `/playground/api/` (issue 12): they mint client tokens and send
 * messages on the page's behalf, so the page never holds the API key or the JWT secret. Each call is refused with
 * 403 `loopback_only` unless the socket's remote address is loopback, the Host header names this machine and an
 * `Origin` header, if any, is the playground's own (`isSameOrigin`: no other page can make it send); a POST must
 * declare its JSON body (`Content-Type: application/json`, 415 otherwise), which a cross-origin page cannot do without
 * a CORS preflight that is never granted.
 *
 * | call | answer |
 * | --- | --- |
 * | `GET info` | `{"user":"playground","vendors":{"apns":bool,"fcm":bool,"hms":bool,"webpush":bool}}` |
 * | `POST token` `{"user","device","kind":"pc"\|"mobile","os"?}` | `{"token","expiresIn"}` (seconds) |
 * | `POST send` `{"user","text","title"?}` | `{"id","status","acceptedAt"}` |
 * | `GET decisions?user=` | `{"decisions":[…]}` as `GET /v1/users/{user}/decisions` |
 * | `GET user?user=` | the user view of `GET /v1/users/{user}` |
 */
export function createPlaygroundApi(deps: PlaygroundApiDeps): (req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) => Promise<void> {
  const secret = new TextEncoder().encode(deps.jwtSecret);
  const vendors = deps.config.pushVendors;

  const token = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJsonBody(req, MAX_BODY_BYTES, DECLARED_JSON);
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    const user = playgroundUser(body.user);
    const device = body.device;
    if (typeof device !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(device)) throw invalid('device', '1-64 characters of A-Z a-z 0-9 _ . -');
    if (body.kind !== 'pc' && body.kind !== 'mobile') throw invalid('kind', '"pc" or "mobile"');
    const claims: Record<string, string> = { dev: device, kind: body.kind };
    if (body.kind === 'mobile') {
      if (typeof body.os !== 'string' || !(MOBILE_OS as readonly string[]).includes(body.os)) throw invalid('os', `one of ${MOBILE_OS.join(', ')}`);
      claims.os = body.os;
    }
    const now = Math.floor(deps.clock.now() / 1000);
    const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt(now)
      .setExpirationTime(now + PLAYGROUND_TOKEN_SECONDS).sign(secret);
    sendJson(res, 200, { token: jwt, expiresIn: PLAYGROUND_TOKEN_SECONDS }, { 'cache-control': 'no-store' });
  };

  const send = async (req: IncomingMessage, res: ServerResponse) => {
    if (!deps.isReady()) throw new SwitchboardError('unavailable', NOT_READY);
    const body = await readJsonBody(req, MAX_BODY_BYTES, DECLARED_JSON);
    if (!isObject(body)) throw invalid('body', 'a JSON object');
    const user = playgroundUser(body.user);
    const decoded = decodeSendRequest({ id: `pg-${randomUUID()}`, to: user, from: 'playground', text: body.text, title: body.title }, deps.clock.now());
    if (!decoded.ok) throw decoded.error;
    const status = await deps.ingress.accept(decoded.value);
    if (status !== 'duplicate') deps.metrics.messagesAccepted.inc({ source: 'playground' });
    sendJson(res, 202, { id: decoded.value.id, status, acceptedAt: decoded.value.acceptedAt });
  };

  const ask = async (res: ServerResponse, query: URLSearchParams, msg: (user: string) => BusMessage, pick: (reply: BusMessage) => unknown) => {
    const user = playgroundUser(query.get('user') ?? undefined);
    const reply = await deps.bus.request(deps.subjects.query(user), msg(user), QUERY_TIMEOUT_MS);
    if (reply.type === 'error') throw new SwitchboardError('unavailable', reply.message);
    sendJson(res, 200, pick(reply), { 'cache-control': 'no-store' });
  };

  /** Each call and its one method (README "Pages"): a known call with another method is 405, not 404. */
  const calls = new Map<string, { method: 'GET' | 'POST'; run: (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => Promise<void> | void }>([
    ['info', { method: 'GET', run: (_req, res) => sendJson(res, 200, { user: 'playground', vendors }) }],
    ['token', { method: 'POST', run: (req, res) => token(req, res) }],
    ['send', { method: 'POST', run: (req, res) => send(req, res) }],
    ['decisions', { method: 'GET', run: (_req, res, query) => ask(res, query, (user) => ({ type: 'decisions_query', user, limit: 50 }), (r) => ({ decisions: r.type === 'decisions' ? r.decisions : [] })) }],
    ['user', { method: 'GET', run: (_req, res, query) => ask(res, query, (user) => ({ type: 'user_query', user }), (r) => (r.type === 'user_view' ? r.view : {})) }],
  ]);

  return async (req, res, name, query) => {
    // The remote address of the socket, not a header: a proxy in front would make every caller look local.
    if (!isLoopbackAddress(req.socket.remoteAddress)) throw new SwitchboardError('loopback_only', 'the playground API answers only clients on this machine');
    if (!isLoopbackHostHeader(req.headers.host)) throw new SwitchboardError('loopback_only', 'the Host header must name localhost or a loopback address');
    if (!isSameOrigin(req.headers.origin, req.headers.host)) throw new SwitchboardError('loopback_only', 'the playground API answers only its own page (Origin)');
    const call = calls.get(name);
    if (call === undefined) throw new SwitchboardError('not_found', `no playground call ${name}`);
    // HEAD is GET without the body (RFC 9110 section 9.3.2), as on every other GET of the node.
    const method = req.method === 'HEAD' && call.method === 'GET' ? 'GET' : req.method;
    if (method !== call.method) return sendError(res, new SwitchboardError('method_not_allowed', `${name} takes ${call.method}`), { allow: call.method === 'GET' ? 'GET, HEAD' : call.method });
    return call.run(req, res, query);
  };
}

function playgroundUser(raw: unknown): string {
  const user = raw === undefined ? 'playground' : raw;
  if (typeof user !== 'string' || !PLAYGROUND_USER.test(user)) throw invalid('user', '"playground" or "playground-<1-64 characters>"');
  return user;
}
