import { Agent, request, type AgentOptions } from 'node:http';
import { monoMs, userId } from './ipc.js';
import { monoNs, paced, sleep } from './stats.js';

export interface HttpOutcome {
  sent: number;
  errors: number;
  statuses: Record<string, number>;
  firstSendMs: number;
  lastSendMs: number;
}

/**
 * A chat server's side of section 3: POST /v1/messages over keep-alive connections, one message per request,
 * addressed round-robin over the simulated users and stamped with the monotonic send time in `data.t`.
 */
export class HttpSender {
  private readonly agent: Agent;
  private readonly auth: string;
  private next = 0;
  private inFlight = 0;
  private outcome: HttpOutcome = HttpSender.fresh();

  constructor(private readonly port: number, apiKey: string, private readonly users: number, sockets = 64) {
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets, noDelay: true } as AgentOptions);
    this.auth = `Bearer ${apiKey}`;
  }

  private static fresh(): HttpOutcome {
    return { sent: 0, errors: 0, statuses: {}, firstSendMs: NaN, lastSendMs: NaN };
  }

  private one(phase: string): { id: string; to: string; data: { t: string } } {
    const seq = this.next++;
    return { id: `${phase}-${seq}`, to: userId(seq % this.users), data: { t: monoNs() } };
  }

  /** One request: POST /v1/messages, or with `batch` > 1 POST /v1/messages/batch with that many messages. */
  private post(phase: string, batch = 1): Promise<void> {
    const messages = Array.from({ length: batch }, () => this.one(phase));
    const body = JSON.stringify(batch === 1 ? messages[0] : { messages });
    const o = this.outcome;
    if (Number.isNaN(o.firstSendMs)) o.firstSendMs = monoMs();
    o.lastSendMs = monoMs();
    o.sent += batch;
    this.inFlight++;
    return new Promise((resolve) => {
      const req = request({
        agent: this.agent, host: '127.0.0.1', port: this.port, method: 'POST', path: batch === 1 ? '/v1/messages' : '/v1/messages/batch',
        headers: { authorization: this.auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        o.statuses[res.statusCode ?? 0] = (o.statuses[res.statusCode ?? 0] ?? 0) + 1;
        if (batch === 1) {
          if (res.statusCode !== 202) o.errors++;
          res.resume();
          res.on('end', done);
          return;
        }
        // Batch: one result per message; refused ones carry `error`.
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const results = (JSON.parse(Buffer.concat(chunks).toString()) as { results?: { error?: unknown }[] }).results;
            o.errors += res.statusCode === 200 && Array.isArray(results) ? results.filter((r) => r.error !== undefined).length : batch;
          } catch {
            o.errors += batch;
          }
          done();
        });
      });
      const done = (): void => {
        this.inFlight--;
        resolve();
      };
      req.on('error', () => {
        o.errors++;
        done();
      });
      req.end(body);
    });
  }

  /** Open loop at `rate` per second; waits for every answer (at most 30 s more). */
  async paced(phase: string, rate: number, durationMs: number): Promise<HttpOutcome> {
    this.outcome = HttpSender.fresh();
    this.next = 0;
    await paced(rate, durationMs, () => void this.post(phase));
    const deadline = Date.now() + 30_000;
    while (this.inFlight > 0 && Date.now() < deadline) await sleep(5);
    return this.outcome;
  }

  /**
   * Closed loop: `count` messages, at most `concurrency` requests open and at most `window` messages accepted
   * but not yet received by a client (so the node's queues, not the client's patience, set the pace).
   */
  async max(phase: string, count: number, window: number, concurrency: number, received: () => number, batch = 1): Promise<HttpOutcome> {
    this.outcome = HttpSender.fresh();
    this.next = 0;
    const base = received();
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (this.outcome.sent < count && this.inFlight < concurrency && this.outcome.sent + batch - (received() - base) <= window) {
          void this.post(phase, Math.min(batch, count - this.outcome.sent)).then(pump);
        }
        if (this.outcome.sent >= count && this.inFlight === 0) return resolve();
        if (this.inFlight === 0) setTimeout(pump, 1); // window full: wait for receipts
      };
      pump();
    });
    return this.outcome;
  }

  close(): void {
    this.agent.destroy();
  }
}
