/** How long start-up keeps retrying a JetStream set-up step before the node gives up, ms. */
export const STARTUP_RETRY_MS = 30_000;

/**
 * Retries a start-up step against JetStream (a JetStream cluster that just formed may have no meta leader yet) with
 * doubling waits (200 ms to 2 s) for up to STARTUP_RETRY_MS; then rejects with `<what>: <last error>`. An error
 * marked `permanent` (e.g. membership's NodeIdInUseError) is rethrown at once; one that carries a `retryNote` (e.g.
 * NodeIdContendedError) has it logged as the warning instead of "JetStream not ready yet", which would blame JetStream.
 */
export async function untilJetStreamReady<T>(step: () => Promise<T>, what: string, log: { warn(o: object, m: string): void }): Promise<T> {
  const deadline = Date.now() + STARTUP_RETRY_MS;
  for (let wait = 200; ; wait = Math.min(wait * 2, 2000)) {
    try {
      return await step();
    } catch (err) {
      if ((err as { permanent?: unknown }).permanent === true) throw err;
      if (Date.now() + wait > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      log.warn({ err: (err as Error).message, what }, retryNoteOf(err) ?? 'JetStream not ready yet; retrying');
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** The warning an error asks start-up to log while it retries (`retryNote`), if any. */
function retryNoteOf(err: unknown): string | undefined {
  const note = (err as { retryNote?: unknown } | undefined)?.retryNote;
  return typeof note === 'string' ? note : undefined;
}

/**
 * JetStream's answer when a stream or bucket asks for replicas > 1 on a server whose JetStream is not clustered
 * (API error 10074, "replicas > 1 not supported in non-clustered mode"): a setting, not a cluster still forming
 * (that answers "insufficient resources", 10023, and is retried), so start-up need not retry it.
 */
export function isReplicasWithoutCluster(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 10074 || /replicas > 1 not supported in non-clustered mode/.test(String((err as Error | undefined)?.message));
}
