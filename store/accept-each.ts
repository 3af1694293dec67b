import { asStoreFailure, type ChatMessage } from '../protocol/index.js';
import type { AcceptOutcome, AcceptResult } from './types.js';

/**
 * `Ingress.acceptMany` from one `accept` per message, all started at once (so they share the ingress's durable
 * writes) and each answered on its own: for an ingress without a batch write of its own (JetStream: nats-server 2.9
 * has no atomic batch, every PubAck is checked alone). A rejection or a synchronous throw is answered as
 * `asStoreFailure` gives it.
 */
export function acceptEach(accept: (msg: ChatMessage) => Promise<AcceptResult>, msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
  return Promise.all(msgs.map((msg) => {
    let accepting: Promise<AcceptResult>;
    try {
      accepting = accept(msg);
    } catch (e) {
      return asStoreFailure(e);
    }
    return accepting.then(undefined, asStoreFailure);
  }));
}
