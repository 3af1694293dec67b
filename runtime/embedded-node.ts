import { join } from 'node:path';
import { DecisionHistory, DECISIONS_PER_USER } from '../actors/decision-history.js';
import { UserDirectory } from '../actors/directory.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { Subjects } from '../bus/subjects.js';
import { createGateway, type Gateway } from '../gateway/server.js';
import { PushPool } from '../senders/pool.js';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { FileInbox } from '../store/file-inbox.js';
import { FileHeldStore } from '../store/file-held-store.js';
import { FilePolicyStore } from '../store/file-policy-store.js';
import { FileDecisionLog } from '../store/decision-log.js';
import { ConfigError, gatewayConfigOf, type Config } from './config.js';
import type { DataDirLock } from '../store/data-dir-lock.js';
import { GatedIngress } from '../store/replay-gate.js';
import { loadSecrets } from './secrets.js';
import { loadSenderConfig, logVendorsOn } from './sender-config.js';
import { canPushWith } from '../senders/vendor-config.js';
import { startTokenSweep } from '../store/token-sweep.js';
import { busEventPublisher, busEventSource, registrationRules, tokenRemovalListener } from './token-removals.js';
import { AcceptTracker } from '../store/accept-tracker.js';
import { StoreHealth } from '../store/store-health.js';
import { FreeSpaceFloor } from '../store/free-space.js';
import { openDataDir } from './data-dir.js';
import type { RunningNode, StartOptions } from './running-node.js';
import { listenOn } from './listen.js';
import { announceStop } from './shutdown-delay.js';
import { RoutingSummary, logDecision } from '../base/routing-log.js';
import type { Metrics } from '../base/metrics.js';
import type { SyncReport } from '../store/append-log.js';

/**
 * The embedded composition root (no SWITCHBOARD_NATS_URL): one process, every partition, the in-process MemoryBus,
 * the file-backed inbox and device registry in the data dir, a Piscina sender pool. It only chooses and wires.
 */
export async function startEmbeddedNode(config: Config, opts: Required<StartOptions>): Promise<RunningNode> {
  const { log, clock, metrics } = opts;
  // One process does everything here: without router and sender nothing would route (SWITCHBOARD_ROLES).
  if (!config.roles.includes('router') || !config.roles.includes('sender')) {
    throw new ConfigError('SWITCHBOARD_ROLES', 'a list holding router and sender without SWITCHBOARD_NATS_URL (the embedded node routes and sends itself)');
  }

  // One node per data dir: a second one exits 2 naming the holder (issue 8 part 4).
  const lock = await openDataDir(config.dataDir);
  const health = new StoreHealth({ dataDir: config.dataDir, log, metrics, clock });
  // Readiness sees a nearly full disk before a write fails (StoreHealth only learns of it from failed writes).
  const space = new FreeSpaceFloor({ dataDir: config.dataDir, minFreeBytes: config.dataDirMinFreeBytes, statfs: opts.statfs, clock, log, metrics });
  try {
    return await wire(config, opts, lock, health, space);
  } catch (e) {
    space.close();
    health.close();
    await lock.release();
    throw e;
  }
}

async function wire(config: Config, opts: Required<StartOptions>, lock: DataDirLock, health: StoreHealth, space: FreeSpaceFloor): Promise<RunningNode> {
  const { log, clock, metrics } = opts;
  const secrets = await loadSecrets(config.dataDir, config);
  const subjects = new Subjects(config.subjectPrefix, config.partitions);
  const bus = new MemoryBus();
  const onTokenRemoved = tokenRemovalListener({ bus, subjects, log, publishEvent: busEventPublisher(bus, subjects) });
  const registry = await FileDeviceRegistry.open(join(config.dataDir, 'devices'), {
    onTokenRemoved, now: () => clock.now(),
    onWriteFailure: (f) => health.writeFailed('devices', f), onDamage: (file, r) => health.damaged('devices', file, r),
  });
  const senderConfig = loadSenderConfig(config);
  logVendorsOn(senderConfig, log);
  const policies = await FilePolicyStore.open(join(config.dataDir, 'policies'), {
    onWriteFailure: (f) => health.writeFailed('policies', f), onDamage: (file, r) => health.damaged('policies', file, r),
  });
  const inbox = await FileInbox.open(join(config.dataDir, 'inbox'), {
    dedupeWindowMs: config.dedupeWindowMs,
    onWriteFailure: (f) => health.writeFailed('inbox', f), onDamage: (file, r) => health.damaged('inbox', file, r),
    onSynced: syncMeter(metrics, 'inbox'),
  });
  // A data dir deleted or replaced under the node is noticed within a second: unready, accepts answered 503.
  health.watch(lock);
  await space.start();
  const held = await FileHeldStore.open(join(config.dataDir, 'held'), {
    onWriteFailure: (f) => health.writeFailed('held', f), onDamage: (file, r) => health.damaged('held', file, r),
    onSynced: syncMeter(metrics, 'held'),
  });
  metrics.heldMessages.set(held.heldTotal);
  const pushes = new PushPool({ config: senderConfig, log, threads: config.senderThreads, maxAttempts: config.pushMaxAttempts, clock, metrics });
  // Section 3: the last decisions per user outlive a restart (store/decision-log.ts).
  const decisionLog = await FileDecisionLog.open(join(config.dataDir, 'decisions'), {
    perUser: DECISIONS_PER_USER,
    onWriteFailure: (f) => health.sideWriteFailed('decisions', f), onDamage: (file, r) => health.damaged('decisions', file, r),
  });
  const history = new DecisionHistory(config.decisionHistoryBytes, DECISIONS_PER_USER, (user, packed) => decisionLog.add(user, packed));
  const restored = decisionLog.restored();
  history.restore(restored);
  if (restored.size > 0) log.info({ users: history.stats.users, bytes: history.stats.bytes }, 'decision history read back');
  decisionLog.snapshotFrom({ entries: () => history.packedEntries() });

  // Decorators: replays wait for clients to reconnect; accepts in flight are counted for a graceful stop.
  // A replayed copy of a message the held store holds is settled, not routed: the held store's replay delivers it.
  // Nor is one the user read (section 4: a read message is no longer held, its pushes are cancelled): its settle was
  // lost to the crash, and routed it would reach the user as new although it was read.
  const gated = new GatedIngress(inbox, clock.now(), config.replayGraceMs, clock, (msg) => held.holds(msg.to, msg.id, clock.now()) || held.wasRead(msg.to, msg.id));
  const ingress = new AcceptTracker(gated);
  const router = new UserDirectory({
    nodeId: config.nodeId, bus, subjects, registry, policies, pushes, clock, metrics, log,
    ackTimeoutMs: config.ackTimeoutMs, presenceTtlMs: config.presenceTtlMs, pushDelayMs: config.pushDelayMs, canPush: canPushWith(senderConfig),
    passivateAfterMs: config.passivateAfterMs, history,
    held, holdTtlMs: config.holdTtlSeconds * 1000, holdMax: config.holdMax, maxInflight: config.maxInflight,
    done: (id) => ingress.done(id),
    // The only listener here is the debug line; without it no event is built per message (the level is fixed at start).
    onRouted: log.isLevelEnabled('debug') ? (e) => logDecision(log, e) : undefined,
  });
  // Embedded: this node owns every partition.
  metrics.ownedPartitions.set(config.partitions);
  bus.subscribe(subjects.ownerPartition('*'), (msg) => router.handle(msg as never));
  bus.serve(subjects.queryPartition('*'), (q) => router.answer(q as never));


  let ready = false;
  let gateway: Gateway | undefined;
  let port = 0;
  if (config.roles.includes('gateway')) {
    gateway = createGateway({
      config: gatewayConfigOf(config), nodeId: config.nodeId, bus, subjects, ingress, registry, policies, metrics, log, clock,
      registration: registrationRules(config, senderConfig), jwtSecret: secrets.jwtSecret, apiKey: secrets.apiKey,
      // /readyz and POST /v1/messages: false while accepts cannot be made durable (issue 8 part 5).
      isReady: () => ready && health.durable(),
      // /readyz only: below SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES; the durable write still decides each accept.
      isDegraded: () => space.low(),
      events: busEventSource(bus, subjects),
    });
    port = await listenOn(gateway, config.host, config.port);
  }
  // Replays what was accepted before a restart and never settled (held for the reconnect grace), then follows new accepts.
  await ingress.consume((msg) => router.handle({ type: 'route', user: msg.to, msg }));
  const holding = gated.startGrace();
  if (holding > 0) log.info({ messages: holding, graceMs: config.replayGraceMs }, 'replaying unsettled messages after the reconnect grace');
  const stopSweep = startTokenSweep({ registry, clock, log, maxAgeDays: config.tokenMaxAgeDays });
  ready = true;
  log.info({ host: config.host, port, dataDir: config.dataDir, secretFiles: secrets.files }, 'switchboard listening');
  const summary = new RoutingSummary(metrics, log, clock, config.summaryIntervalMs);
  summary.start();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await announceStop(gateway, config.shutdownDelayMs, clock, log);
      // SWITCHBOARD_SHUTDOWN_TIMEOUT_MS bounds the whole drain (routing, then vendor answers), not each step of it.
      const deadline = clock.now() + config.shutdownTimeoutMs;
      const left = (): number => Math.max(0, deadline - clock.now());
      ready = false;
      log.info('stopping: no new messages or sessions');
      gateway?.stopAccepting();
      // Replays still held stay unsettled in the inbox and come back at the next start.
      gated.cancelGrace();
      // Accepts still writing when SIGTERM arrives are answered 202 and must be routed before the sessions close.
      await ingress.settled();
      // Route everything accepted while the sessions are still open, then say goodbye to the clients.
      await router.drain(left());
      const closed = await gateway?.closeSessions(1001);
      if (closed !== undefined) log.info({ sessions: closed, code: 1001 }, 'sessions closed');
      await router.drain(left());
      // Actors stop before the pool, so a push cut short leaves its message unsettled (sent again at the next
      // start) instead of reporting it failed.
      router.stop();
      // What is still open (a delivery that never got its ack) is written as it stands.
      history.sealAll();
      await decisionLog.close();
      await pushes.close(left());
      await ingress.close();
      await held.close();
      await stopSweep();
      await registry.close();
      await policies.close();
      await gateway?.close();
      await bus.close();
      space.close();
      health.close();
      await lock.release();
      await summary.stop(); // the last interval's summary, drain included
      log.info('stopped');
    })());

  return { nodeId: config.nodeId, port, router, ingress, metrics, apiKey: secrets.apiKey, jwtSecret: secrets.jwtSecret, stop };
}

/** A store's group commits into `switchboard_store_sync_seconds` and `switchboard_store_synced_records_total`. */
function syncMeter(metrics: Metrics, store: 'inbox' | 'held'): (sync: SyncReport) => void {
  const labels = { store };
  return (sync) => {
    metrics.storeSyncSeconds.observe(labels, sync.ms / 1000);
    metrics.storeSyncedRecords.inc(labels, sync.records);
  };
}
