// A thread that loads the APNs key with the shared token slot it is given and answers the provider token it would
// send (the built senders, as the sender pool's workers run them).
import { parentPort, workerData } from 'node:worker_threads';
import { ProviderToken } from '../../dist/senders/apns-token.js';
import { TokenSlot } from '../../dist/senders/apns-token-slot.js';

const { keyFile, slot, go } = workerData;
const token = ProviderToken.load(keyFile, 'KEYID12345', 'TEAMID1234', Date.now, undefined, new TokenSlot(slot));
// Start together: each thread says it is ready, waits for the word, then asks for its token at once (the race the slot
// must settle).
parentPort.postMessage({ ready: true });
Atomics.wait(new Int32Array(go), 0, 0);
const jwt = token.current();
parentPort.postMessage({ jwt, signed: token.signed });
