// Child process for test/store-crash.test.ts: writes to the stores as fast as it can and prints each id only after
// its write was acknowledged, until the test kills it with SIGKILL. Plain .mjs because Node 20 cannot run .ts;
// it imports the compiled store from dist/ (the test compiles it first).
// Usage: node store-crash-child.mjs <dist dir> <data dir>
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [distDir, dataDir] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(join(distDir, 'store', file)).href);
const { FileInbox } = await load('file-inbox.js');
const { FileDeviceRegistry } = await load('file-device-registry.js');

const inbox = await FileInbox.open(join(dataDir, 'inbox'), { segmentBytes: 64 * 1024 });
const registry = await FileDeviceRegistry.open(join(dataDir, 'devices'), { compactMinBytes: 8 * 1024 });
// Settle some messages as a router would, so segments roll and get deleted during the run.
await inbox.consume((msg) => {
  if (Number(msg.id.slice(4)) % 2 === 0) inbox.done(msg.id);
});
// Pipes to the parent are synchronous on Linux: a printed line is in the pipe before the next write starts.
const say = (line) => process.stdout.write(`${line}\n`);
say('ready');

let next = 0;
async function acceptLoop() {
  for (;;) {
    const id = `msg-${next++}`;
    const result = await inbox.accept({ id, to: 'user-1', text: `body ${id}`, acceptedAt: Date.now() });
    if (result === 'accepted') say(`accepted ${id}`);
  }
}
// Batches too (POST /v1/messages/batch): one log write per batch, each id printed once its batch is durable.
async function batchLoop() {
  for (;;) {
    const msgs = Array.from({ length: 20 }, () => {
      const id = `bat-${next++}`; // the number after the 4-character prefix decides settling, as for `msg-`
      return { id, to: 'user-1', text: `body ${id}`, acceptedAt: Date.now() };
    });
    const outcomes = await inbox.acceptMany(msgs);
    outcomes.forEach((outcome, i) => outcome === 'accepted' && say(`accepted ${msgs[i].id}`));
  }
}
async function deviceLoop() {
  for (let n = 0; ; n++) {
    const device = `dev-${n % 50}`;
    const token = `tok-${n}`;
    await registry.put('user-1', device, { os: 'android', token });
    say(`device ${device} ${token}`);
  }
}
// Several writers in parallel, so group commit batches their accepts as the gateway's would.
await Promise.all([...Array.from({ length: 16 }, acceptLoop), ...Array.from({ length: 4 }, batchLoop), deviceLoop()]);
