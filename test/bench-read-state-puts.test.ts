import { describe, expect, it } from 'vitest';
import { runPuts } from '../bench/read-state-puts.js';

/**
 * The read-state put bench (bench/read-state-puts.ts) compares what it says it compares: the same writer and the
 * same puts per delivery in both modes, and only the `changes` mode puts less than the whole state.
 */
describe('bench read-state puts', () => {
  it('both modes put as often; the whole state is what the baseline puts, the changes are a few bytes a delivery', async () => {
    const whole = await runPuts('whole', 'cap', 400);
    const changes = await runPuts('changes', 'cap', 400);
    expect(changes.putsPerDelivery).toBe(whole.putsPerDelivery);
    // 1,500 ids of ~8 characters in each whole put, one put per 4 deliveries.
    expect(whole.bytesPerDelivery).toBeGreaterThan(2500);
    expect(changes.bytesPerDelivery).toBeLessThan(200);
    const reading = await runPuts('changes', 'reading', 400);
    expect(reading.bytesPerDelivery).toBeLessThan(200); // reads go as changes too
  });
});
