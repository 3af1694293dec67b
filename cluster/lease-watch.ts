import type { KvEntry } from '@nats-io/kv';
import type { Clock, Timer } from '../base/clock.js';
import type { ClusterLog } from './lease-log.js';

interface WatchIterator extends AsyncIterable<KvEntry> {
  stop(): void;
}

/**
 * Follows a KV watch and opens it again whenever it ends or fails (connection closed, consumer lost), after
 * `retryMs` on the injected clock. A reopened watch replays the latest value of every key, so the consumer only
 * has to ignore revisions it already knows.
 */
export function followWatch(
  open: () => Promise<WatchIterator>,
  onEntry: (e: KvEntry) => void,
  opts: {
    clock: Clock;
    log: ClusterLog;
    what: string;
    /** Wait before reopening; default 500 ms. */
    retryMs?: number;
    /**
     * Reopen when nothing arrived for this long while `expectTraffic()` says something should have (e.g. our own
     * periodic writes). The client notices a dead consumer only after two missed 5 s idle heartbeats; this is
     * quicker. Default: off.
     */
    staleAfterMs?: number;
    expectTraffic?: () => boolean;
  },
): { stop(): void } {
  let stopped = false;
  let current: WatchIterator | undefined;
  let retry: Timer | undefined;
  let staleCheck: Timer | undefined;
  let lastEntryAt = opts.clock.now();

  const checkStale = (): void => {
    staleCheck = undefined;
    if (stopped || opts.staleAfterMs === undefined) return;
    const quiet = opts.clock.now() - lastEntryAt;
    if (current && quiet >= opts.staleAfterMs && (opts.expectTraffic?.() ?? true)) {
      opts.log.info({ quietMs: quiet }, `${opts.what}: watch went quiet, reopening`);
      current.stop(); // ends the loop below, which reopens
      current = undefined;
      lastEntryAt = opts.clock.now();
    }
    staleCheck = opts.clock.setTimeout(checkStale, opts.staleAfterMs);
  };

  const run = async (): Promise<void> => {
    try {
      current = await open();
      lastEntryAt = opts.clock.now();
      if (stopped) return current.stop();
      for await (const e of current) {
        lastEntryAt = opts.clock.now();
        try {
          onEntry(e);
        } catch (err) {
          opts.log.warn({ err, key: e.key }, `${opts.what}: update not applied`);
        }
      }
    } catch (err) {
      opts.log.warn({ err }, `${opts.what}: watch failed`);
    }
    if (stopped) return;
    opts.log.info({}, `${opts.what}: watch ended, reopening`);
    retry = opts.clock.setTimeout(() => {
      retry = undefined;
      void run();
    }, opts.retryMs ?? 500);
  };
  void run();
  if (opts.staleAfterMs !== undefined) staleCheck = opts.clock.setTimeout(checkStale, opts.staleAfterMs);

  return {
    stop() {
      stopped = true;
      for (const t of [retry, staleCheck]) if (t !== undefined) opts.clock.clearTimeout(t);
      current?.stop();
    },
  };
}
