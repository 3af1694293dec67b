// The push job types are the port between actors and senders, so they live on the wire floor (protocol/push.ts).
export type { PushJob, PushOutcome, PushSink } from '../protocol/push.js';
