import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileInbox } from '../store/file-inbox.js';

export interface DurableAcceptRun {
  /** Accepts awaited at the same time: 1 is one-append-at-a-time (one fdatasync each), the baseline. */
  concurrency: number;
  accepts: number;
  acceptsPerSecond: number;
  /** write + fdatasync rounds, summed over segments, per accept. */
  syncsPerAccept: number;
}

/**
 * Durable accepts per second through a fresh FileInbox in a temp dir, `concurrency` callers each awaiting its
 * accept before sending the next, as HTTP requests do. Compare a run with concurrency 1 to see group commit's gain.
 */
export async function measureDurableAccepts(concurrency: number, accepts: number, textBytes = 200): Promise<DurableAcceptRun> {
  const dir = await mkdtemp(join(tmpdir(), 'sb-bench-'));
  const inbox = await FileInbox.open(dir);
  const syncs = (): number => inbox.segmentSyncs();
  const text = 'x'.repeat(textBytes);
  let next = 0;
  const caller = async (): Promise<void> => {
    while (next < accepts) {
      const id = `bench-${next++}`;
      await inbox.accept({ id, to: 'user-1', text, acceptedAt: Date.now() });
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, caller));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const run = { concurrency, accepts, acceptsPerSecond: Math.round(accepts / seconds), syncsPerAccept: syncs() / accepts };
  await inbox.close();
  await rm(dir, { recursive: true, force: true });
  return run;
}

// `node dist/store/durable-accept-bench.js [accepts]`: prints the baseline and group-commit runs as a table.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const accepts = Number(process.argv[2] ?? 20_000);
  const runs: DurableAcceptRun[] = [await measureDurableAccepts(1, Math.min(accepts, 2_000))];
  for (const concurrency of [16, 64, 256, 1024]) runs.push(await measureDurableAccepts(concurrency, accepts));
  const baseline = runs[0].acceptsPerSecond;
  console.table(runs.map((r) => ({ ...r, syncsPerAccept: r.syncsPerAccept.toFixed(3), vsBaseline: `${(r.acceptsPerSecond / baseline).toFixed(1)}x` })));
}
