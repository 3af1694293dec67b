import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { SwitchboardError, decodeSendBytes, type ChatMessage } from '../protocol/index.js';
import type { AcceptResult } from '../store/types.js';

const packr = new Packr({ useRecords: false });

export interface SendListenerDeps {
  nc: NatsConnection;
  /** `<prefix>.send` */
  subject: string;
  /** Durable acceptance (JetStream); rejects with a SwitchboardError when it could not store the message. */
  accept(msg: ChatMessage): Promise<AcceptResult>;
  now(): number;
  onAccepted?(source: 'nats'): void;
  onError?(err: unknown): void;
}

/**
 * Chat servers' NATS ingress (PROTOCOL.md section 3): the message object on `switchboard.send`, MessagePack by
 * default or JSON with `Content-Type: application/json`, taken by one gateway of the queue group. With a reply
 * subject it is answered like the HTTP call, in the request's encoding, once the message is durably accepted.
 * Requests are handled concurrently, so many JetStream publishes are in flight at once.
 */
export class SendListener {
  private readonly sub: Subscription;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: SendListenerDeps) {
    this.sub = deps.nc.subscribe(deps.subject, { queue: 'switchboard-gateways', callback: (err, m) => (err ? deps.onError?.(err) : this.take(m)) });
  }

  /** Stops taking new messages and waits for those being accepted. */
  async stop(): Promise<void> {
    this.sub.unsubscribe();
    await Promise.all(this.inFlight);
  }

  private take(m: Msg): void {
    const json = (m.headers?.get('Content-Type') ?? '').toLowerCase().startsWith('application/json');
    const p = this.handle(m, json).then(
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
    // Strict UTF-8 in both encodings, __proto__ refused, then the section 3 rules (protocol/send-payload.ts).
    const decoded = decodeSendBytes(m.data, json ? 'json' : 'msgpack', this.deps.now());
    if (!decoded.ok) throw decoded.error;
    const status = await this.deps.accept(decoded.value);
    if (status === 'accepted') this.deps.onAccepted?.('nats');
    return { id: decoded.value.id, status };
  }

  private reply(m: Msg, json: boolean, body: unknown): void {
    if (!m.reply) return;
    m.respond(json ? new TextEncoder().encode(JSON.stringify(body)) : packr.pack(body));
  }
}
