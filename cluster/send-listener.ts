import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import {
  SwitchboardError, decodeBatchRequest, decodeSendBytes, parseSendBytes, MAX_BATCH_BYTES, type BatchResult, type ChatMessage,
} from '../protocol/index.js';
import { acceptBatch } from '../gateway/batch.js';
import type { AcceptOutcome, AcceptResult } from '../store/types.js';

const packr = new Packr({ useRecords: false });

export interface SendListenerDeps {
  nc: NatsConnection;
  /** `<prefix>.send` */
  subject: string;
  /** `<prefix>.send.batch`: `{"messages":[…1-500…]}` answered `{"results":[…]}`. Absent: no batch subject. */
  batchSubject?: string;
  /** Durable acceptance (JetStream); rejects with a SwitchboardError when it could not store the message. */
  accept(msg: ChatMessage): Promise<AcceptResult>;
  /** The batch subject's acceptance (`Ingress.acceptMany`): one outcome per message, never rejects. */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]>;
  now(): number;
  onAccepted?(source: 'nats'): void;
  onDuplicate?(): void;
  onError?(err: unknown): void;
}

/**
 * Chat servers' NATS ingress (PROTOCOL.md section 3): the message object on `switchboard.send`, MessagePack by
 * default or JSON with `Content-Type: application/json`, taken by one gateway of the queue group. With a reply
 * subject it is answered like the HTTP call, in the request's encoding, once the message is durably accepted.
 * Requests are handled concurrently, so many JetStream publishes are in flight at once.
 */
export class SendListener {
  private readonly subs: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: SendListenerDeps) {
    this.subs.push(deps.nc.subscribe(deps.subject, { queue: 'switchboard-gateways', callback: (err, m) => (err ? deps.onError?.(err) : this.take(m, false)) }));
    if (deps.batchSubject !== undefined) {
      this.subs.push(deps.nc.subscribe(deps.batchSubject, { queue: 'switchboard-gateways', callback: (err, m) => (err ? deps.onError?.(err) : this.take(m, true)) }));
    }
  }

  /**
   * Stops taking new messages and waits for those being accepted. Each subscription is drained, not just
   * unsubscribed: requests the server routed to this gateway before it heard the unsubscribe are still on their way,
   * and an unsubscribed client drops them unanswered (section 3: a request is answered; its chat server would wait
   * out its timeout). The drain's round trip to the server brings them in first. Requests the queue group routes after
   * the unsubscribe go to the other gateways, or answer "no responders" when none is left.
   */
  async stop(): Promise<void> {
    await Promise.all(this.subs.map((sub) => sub.drain().catch(() => undefined))); // a closed connection: nothing more comes
    await Promise.all(this.inFlight);
  }

  private take(m: Msg, batch: boolean): void {
    const json = declaresJson(m.headers);
    const p = (batch ? this.handleBatch(m, json) : this.handle(m, json)).then(
      (body) => this.reply(m, json, body),
      (e: unknown) => {
        const err = e instanceof SwitchboardError ? e : new SwitchboardError('internal', String(e), { cause: e });
        if (err.code === 'internal') this.deps.onError?.(e);
        this.reply(m, json, { error: err.toBody() });
      },
    );
    const tracked: Promise<void> = p.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async handle(m: Msg, json: boolean): Promise<{ id: string; status: AcceptResult }> {
    // As `POST /v1/messages` decodes its body (section 3: answered like the HTTP call), 413s included.
    const decoded = decodeSendBytes(m.data, json ? 'json' : 'msgpack', this.deps.now());
    if (!decoded.ok) throw decoded.error;
    const status = await this.deps.accept(decoded.value);
    if (status === 'accepted') this.deps.onAccepted?.('nats');
    return { id: decoded.value.id, status };
  }

  /** Section 3 batch: every message accepted concurrently, each JetStream PubAck checked; results in order. */
  private async handleBatch(m: Msg, json: boolean): Promise<{ results: BatchResult[] }> {
    const decoded = decodeBatchRequest(parse(m, json, MAX_BATCH_BYTES), this.deps.now());
    if (!decoded.ok) throw decoded.error;
    const results = await acceptBatch(decoded.value, (msgs) => this.deps.acceptMany(msgs), (status) => {
      if (status === 'accepted') this.deps.onAccepted?.('nats');
      else this.deps.onDuplicate?.();
    });
    return { results };
  }

  private reply(m: Msg, json: boolean, body: unknown): void {
    if (!m.reply) return;
    m.respond(json ? new TextEncoder().encode(JSON.stringify(body)) : packr.pack(body));
  }
}

/** Strict UTF-8 in both encodings and `__proto__` refused (issue 9, protocol/send-payload.ts), then JSON or MessagePack. */
function parse(m: Msg, json: boolean, limit: number): unknown {
  const parsed = parseSendBytes(m.data, json ? 'json' : 'msgpack', limit);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

/**
 * Section 3: a `switchboard.send` payload is JSON when its `Content-Type` header says so, else MessagePack. The header's
 * name is matched in any case (NATS headers are case-sensitive and clients write `content-type` too) and its type as
 * HTTP's is: `application/json` or `application/*+json` (RFC 6839), parameters such as `charset` allowed.
 */
export function declaresJson(h: MsgHdrs | undefined): boolean {
  if (h === undefined) return false;
  for (const [name, values] of h) {
    if (name.toLowerCase() !== 'content-type') continue;
    const type = (values[0] ?? '').split(';')[0].trim().toLowerCase();
    return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
  }
  return false;
}
