import { apnsAnswers, startApnsServer } from '../test/vendors/apns-server.js';
import { startFcmServer } from '../test/vendors/fcm-server.js';

/**
 * Child process of `bench/senders.ts`: the local APNs and FCM stand-ins (test/vendors), in their own process so
 * the server's CPU is not taken from the measured pool (on 2 cores: pool process on one, stand-in on the other).
 * Tells its parent where they listen over IPC, then serves until told to close.
 */

export interface StandIns {
  apns: { origin: string; keyFile: string; keyId: string; teamId: string; topic: string; maxConcurrentStreams: number };
  fcm: { origin: string; serviceAccountFile: string; projectId: string };
  /** The test CA that signed both certificates, for NODE_EXTRA_CA_CERTS of the measured process. */
  caFile: string;
  pid: number;
}

export type ServerReply = { type: 'ready'; standIns: StandIns };

async function main(): Promise<void> {
  // No GOAWAY every 1000 requests here: the figures are steady-state throughput (tests cover surviving GOAWAY).
  const apns = await startApnsServer({ goawayEvery: 0 });
  const fcm = await startFcmServer({ tls: true, record: false });
  // `--latency N`: every answer is held N ms, as a real vendor's round trip would be.
  const latencyMs = Number(process.argv[process.argv.indexOf('--latency') + 1] ?? 0) || 0;
  if (latencyMs > 0) {
    apns.setBehavior(apnsAnswers.slow(latencyMs));
    fcm.setBehavior({ delayMs: latencyMs });
  }
  // The APNs stand-in records every request; the benchmark counts outcomes itself, so the record is dropped.
  const trim = setInterval(() => {
    apns.requests.length = 0;
  }, 250);
  const standIns: StandIns = {
    apns: { origin: apns.origin, keyFile: apns.keyFile, keyId: apns.keyId, teamId: apns.teamId, topic: apns.topic, maxConcurrentStreams: apns.maxConcurrentStreams },
    fcm: { origin: fcm.origin!, serviceAccountFile: fcm.serviceAccountFile, projectId: fcm.projectId },
    caFile: apns.caFile,
    pid: process.pid,
  };
  const reply = (m: ServerReply) => process.send!(m);
  process.on('message', async (msg: { type: string }) => {
    if (msg.type === 'close') {
      clearInterval(trim);
      const errors = apns.stats().errors;
      if (errors.length > 0) process.stderr.write(`apns stand-in errors (${errors.length}): ${errors.slice(0, 3).join('; ')}\n`);
      await Promise.all([apns.close(), fcm.close()]);
      process.exit(0);
    }
  });
  reply({ type: 'ready', standIns });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`stand-ins failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
