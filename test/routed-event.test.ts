import { describe, expect, it } from 'vitest';
import { routedEvent, type Decision } from '../protocol/index.js';

/** Every field of a Decision (a compile error here when Decision gains one: add it to routedEvent too). */
const DECISION_FIELDS = { id: true, route: true, reason: true, targets: true, at: true } satisfies Record<keyof Decision, true>;

describe('routedEvent (switchboard.events.routed, section 3)', () => {
  it('is the decision plus user and node, as a spread copy would be, sharing the same targets', () => {
    const d: Decision = {
      id: 'm1', route: 'mobile', reason: 'screen_locked', at: 1700000000000,
      targets: [{ device: 'phone', via: 'fcm', outcome: 'failed', detail: 'quota', silent: true }, { device: 'pc', via: 'pc' }],
    };
    const e = routedEvent(d, 'alice', 'n1');
    expect(e).toEqual({ ...d, user: 'alice', node: 'n1' });
    expect(Object.keys(e).sort()).toEqual([...Object.keys(DECISION_FIELDS), 'user', 'node'].sort());
    expect(e.targets).toBe(d.targets);
  });
});
