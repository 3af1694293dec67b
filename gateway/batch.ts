import { SwitchboardError, type BatchItem, type BatchResult } from '../protocol/index.js';
import type { AcceptResult } from '../store/types.js';

/**
 * Accepts the messages of one batch (PROTOCOL.md section 3, `POST /v1/messages/batch`, `switchboard.send.batch`)
 * all at once, so they share the ingress's durable writes: the embedded inbox group-commits them into about one
 * fdatasync; JetStream gets every publish in flight together, each PubAck checked on its own (nats-server 2.9 has
 * no atomic batch). Resolves once every message is durably accepted or refused, one result per message in order.
 */
export async function acceptBatch(
  items: readonly BatchItem[],
  accept: (msg: Extract<BatchItem, { ok: true }>['msg']) => Promise<AcceptResult>,
  counted?: (status: AcceptResult) => void,
): Promise<BatchResult[]> {
  return Promise.all(items.map(async (item): Promise<BatchResult> => {
    if (!item.ok) return item.id === undefined ? { error: item.error.toBody() } : { id: item.id, error: item.error.toBody() };
    const { id } = item.msg;
    try {
      const status = await accept(item.msg);
      counted?.(status);
      return { id, status };
    } catch (e) {
      const err = e instanceof SwitchboardError ? e : new SwitchboardError('store_failed', undefined, { cause: e });
      return { id, error: err.toBody() };
    }
  }));
}
