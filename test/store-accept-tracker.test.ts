import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../protocol/index.js';
import { acceptEach } from '../store/accept-each.js';
import { AcceptTracker } from '../store/accept-tracker.js';
import type { AcceptResult, Ingress } from '../store/types.js';

/** A graceful stop waits for every accept in flight (accepted, duplicate or failed) before it routes what is left. */

function ingressWithManualAccepts() {
  const waiting = new Map<string, { resolve: (r: AcceptResult) => void; reject: (e: Error) => void }>();
  const accept = (msg: ChatMessage): Promise<AcceptResult> => new Promise((resolve, reject) => waiting.set(msg.id, { resolve, reject }));
  const ingress: Ingress = {
    accept,
    acceptMany: (msgs) => acceptEach(accept, msgs),
    consume: async () => {},
    release: async () => {},
    done: () => {},
    close: async () => {},
  };
  return { ingress, waiting };
}

const msg = (id: string): ChatMessage => ({ id, to: 'u', acceptedAt: 0 });

describe('AcceptTracker', () => {
  it('settles once every accept started so far finished, failed ones included; the caller sees the inner result', async () => {
    const { ingress, waiting } = ingressWithManualAccepts();
    const tracker = new AcceptTracker(ingress);
    const a = tracker.accept(msg('a'));
    const b = tracker.accept(msg('b'));
    let settled = false;
    const done = tracker.settled().then(() => (settled = true));
    waiting.get('a')!.resolve('accepted');
    expect(await a).toBe('accepted');
    await Promise.resolve();
    expect(settled).toBe(false);
    waiting.get('b')!.reject(new Error('disk full'));
    await expect(b).rejects.toThrow('disk full');
    await done;
    expect(settled).toBe(true);
    // Nothing in flight: at once.
    await tracker.settled();
  });

  it('waits for a batch in flight until its last message is answered', async () => {
    const { ingress, waiting } = ingressWithManualAccepts();
    const tracker = new AcceptTracker(ingress);
    const batch = tracker.acceptMany([msg('a'), msg('b')]);
    let settled = false;
    const done = tracker.settled().then(() => (settled = true));
    waiting.get('a')!.resolve('accepted');
    await Promise.resolve();
    await Promise.resolve();
    expect(settled).toBe(false);
    waiting.get('b')!.reject(new Error('disk full'));
    expect((await batch).map((o) => (typeof o === 'string' ? o : o.code))).toEqual(['accepted', 'store_failed']);
    await done;
    expect(settled).toBe(true);
  });
});
