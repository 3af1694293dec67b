import { setFlagsFromString } from 'node:v8';

/**
 * Sets how far V8's old generation may grow past what the last full GC kept live before it starts the next one:
 * `--heap-growing-percent` (a V8 flag, read each time V8 recomputes its heap limits, so it takes effect when set at
 * run time; a V8 without it prints "unrecognized flag" on stderr and keeps its own choice, nothing fails). It is
 * process-wide: whatever else runs in the process (a test runner, the in-process bench) gets it too, and a later 0
 * does not undo an earlier value.
 *
 * Why (issue 13, p99 send-to-receive at 10k msgs/s): V8 picks the growth factor itself, between 1.1 and 4, from how
 * fast its full GC is against the allocation rate (V8 `MemoryController::DynamicGrowingFactor`); a fast full GC gets
 * a small factor, so with a live heap of ~35 MB the embedded benchmark saw a full GC every 1-3 s, and every one of
 * them put 10-25 ms into the tail of the messages in flight (incremental marking steps and the final pause on the
 * event loop, concurrent marking taking the second core). With 300 (a factor of 4, V8's own maximum) it saw one in
 * ~20 s at the same rate; the price is memory: up to 4x the live heap between full GCs, also when memory is short
 * (the flag replaces V8's smaller factors near its heap limit; only `--max-old-space-size` still bounds the heap, so
 * set that in a container with a memory limit). `percent` 0 leaves V8 alone.
 */
export function applyHeapGrowth(percent: number, setFlags: (flags: string) => void = setFlagsFromString): void {
  if (percent > 0) setFlags(`--heap-growing-percent=${percent}`);
}
