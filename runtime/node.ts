import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Router } from '../actors/router.js';
import type { ChatMessage } from '../protocol/index.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { Subjects } from '../bus/subjects.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { PushPool } from '../senders/pool.js';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { FileInbox } from '../store/file-inbox.js';
import type { Ingress } from '../store/types.js';
import { startClusterNode } from './cluster-node.js';
import { systemClock, type Clock } from '../base/clock.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { ReplayGate } from '../store/replay-gate.js';
import { loadSecrets } from './secrets.js';
import { loadSenderConfig, logVendorsOn } from './sender-config.js';
import { canPushWith } from '../senders/vendor-config.js';
import { AcceptTracker } from '../store/accept-tracker.js';

/** A started node: what `bin/switchboard.ts` runs and what in-process tests and benchmarks drive. */
export interface RunningNode {
  readonly nodeId: string;
  readonly port: number;
  readonly router: Router;
  /** Durable acceptance, the in-process entry (benchmarks, tests): the same path as `POST /v1/messages`. */
  readonly ingress: Pick<Ingress, 'accept'>;
  readonly metrics: Metrics;
  readonly apiKey: string;
  readonly jwtSecret: string;
  /** Graceful stop (SIGTERM): stop accepting, finish in-flight work, flush durable state. */
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  clock?: Clock;
  /** Metrics registry; default metrics (process, GC) are collected unless disabled. */
  metrics?: Metrics;
}

/**
 * The composition root: the only place that chooses implementations (STYLE.md, "the house").
 * Single node: the in-process MemoryBus, the file-backed inbox and device registry, a Piscina sender pool.
 */
export async function startNode(config: Config, opts: StartOptions = {}): Promise<RunningNode> {
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? systemClock;
  const metrics = opts.metrics ?? new Metrics();
  if (config.natsServers.length > 0) return startClusterNode(config, { log, clock, metrics });

  await mkdir(config.dataDir, { recursive: true });
  const secrets = await loadSecrets(config.dataDir, config);
  const subjects = new Subjects(config.subjectPrefix, config.partitions);
  const bus = new MemoryBus();
  const registry = await FileDeviceRegistry.open(join(config.dataDir, 'devices'));
  const ingress = await FileInbox.open(join(config.dataDir, 'inbox'), { dedupeWindowMs: config.dedupeWindowMs });
  const senderConfig = loadSenderConfig(config);
  logVendorsOn(senderConfig, log);
  const pushes = new PushPool({ config: senderConfig, log, threads: config.senderThreads, maxAttempts: config.pushMaxAttempts, clock, metrics });

  const router = new Router({
    nodeId: config.nodeId, bus, subjects, registry, pushes, clock, metrics, log,
    ackTimeoutMs: config.ackTimeoutMs, presenceTtlMs: config.presenceTtlMs, pushDelayMs: config.pushDelayMs, canPush: canPushWith(senderConfig),
    passivateAfterMs: config.passivateAfterMs,
    settle: (id) => ingress.settle(id),
  });
  // Embedded: this node owns every partition.
  metrics.ownedPartitions.set(config.partitions);
  bus.subscribe(subjects.ownerPartition('*'), (msg) => router.handle(msg as never));
  bus.serve(subjects.queryPartition('*'), (q) => router.answer(q as never));

  const gate = new ReplayGate(clock.now(), config.replayGraceMs, clock, (msg) => router.handle({ type: 'route', user: msg.to, msg }));
  // Accepts still writing when SIGTERM arrives are answered 202 and must be routed before the sessions close.
  const trackedIngress = new AcceptTracker(ingress);

  let ready = false;
  let gateway: Gateway | undefined;
  let port = 0;
  if (config.roles.includes('gateway')) {
    gateway = createGateway({
      config, nodeId: config.nodeId, bus, subjects, ingress: trackedIngress, registry, metrics, log, clock,
      jwtSecret: secrets.jwtSecret, apiKey: secrets.apiKey, isReady: () => ready,
    });
    port = await gateway.listen(config.host, config.port);
  }
  // Replays what was accepted before a restart and never settled (held for the reconnect grace), then follows new accepts.
  await ingress.consume((msg) => gate.take(msg));
  gate.start();
  if (gate.holding > 0) log.info({ messages: gate.holding, graceMs: config.replayGraceMs }, 'replaying unsettled messages after the reconnect grace');
  ready = true;
  log.info({ node: config.nodeId, host: config.host, port, dataDir: config.dataDir, secretFiles: secrets.files }, 'switchboard listening');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      ready = false;
      log.info('stopping: no new messages or sessions');
      gateway?.stopAccepting();
      // Replays still held stay unsettled in the inbox and come back at the next start.
      gate.cancel();
      await trackedIngress.settled();
      // Route everything accepted while the sessions are still open, then say goodbye to the clients.
      await router.drain(config.shutdownTimeoutMs);
      await gateway?.closeSessions(1001);
      await router.drain(config.shutdownTimeoutMs);
      // Actors stop before the pool, so a push cut short leaves its message unsettled (sent again at the next
      // start) instead of reporting it failed.
      router.stop();
      await pushes.close();
      await ingress.close();
      await registry.close();
      await gateway?.close();
      await bus.close();
      log.info('stopped');
    })());

  return { nodeId: config.nodeId, port, router, ingress: trackedIngress, metrics, apiKey: secrets.apiKey, jwtSecret: secrets.jwtSecret, stop };
}
