import { asStoreFailure, type BatchItem, type BatchResult, type ChatMessage } from '../protocol/index.js';
import type { AcceptOutcome, AcceptResult } from '../store/types.js';

/**
 * Accepts the messages of one batch (PROTOCOL.md section 3, `POST /v1/messages/batch`, `switchboard.send.batch`)
 * all at once through the ingress's `acceptMany`: the embedded inbox writes them as one log write (one fdatasync);
 * JetStream gets every publish in flight together, each PubAck checked on its own (nats-server 2.9 has no atomic
 * batch). Resolves once every message is durably accepted or refused, one result per message in order; a message
 * refused by the decoder keeps its error and is never accepted. `counted` is called once per accepted or duplicate
 * message, in order.
 */
export function acceptBatch(
  items: readonly BatchItem[],
  acceptMany: (msgs: readonly ChatMessage[]) => Promise<AcceptOutcome[]>,
  counted?: (status: AcceptResult) => void,
): Promise<BatchResult[]> {
  const msgs: ChatMessage[] = [];
  for (const item of items) if (item.ok) msgs.push(item.msg);
  let accepting: Promise<AcceptOutcome[]>;
  try {
    accepting = msgs.length === 0 ? Promise.resolve([]) : acceptMany(msgs);
  } catch (e) {
    accepting = Promise.reject(e);
  }
  return accepting.then(
    (outcomes) => batchResults(items, outcomes, counted),
    // `acceptMany` never rejects; a bug that makes it do so still answers every message (503), not the request.
    (e: unknown) => batchResults(items, msgs.map(() => asStoreFailure(e)), counted),
  );
}

/** The items' results in order: the decoder's refusals as they are, the others from `outcomes` (one per ok item). */
function batchResults(items: readonly BatchItem[], outcomes: readonly AcceptOutcome[], counted?: (status: AcceptResult) => void): BatchResult[] {
  let next = 0;
  return items.map((item): BatchResult => {
    if (!item.ok) return item.id === undefined ? { error: item.error.toBody() } : { id: item.id, error: item.error.toBody() };
    const outcome = outcomes[next++];
    if (typeof outcome !== 'string') return { id: item.msg.id, error: outcome.toBody() };
    counted?.(outcome);
    return { id: item.msg.id, status: outcome };
  });
}
