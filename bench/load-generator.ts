import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientStats, ClientsSetup, FromClients, ToClients } from './ipc.js';
import { sleep } from './stats.js';

type Reply<T extends FromClients['type']> = Extract<FromClients, { type: T }>;

/** The node side's handle on the load-generator child (bench/clients.ts): commands out, replies and progress in. */
export class LoadGenerator {
  /** Messages received by the simulated clients since the last reset (updated every ~10 ms). */
  received = 0;
  /** Called on every progress report; the in-process sender refills its window from here. */
  onProgress?: () => void;
  private waiters: { type: string; resolve: (m: any) => void; reject: (e: Error) => void }[] = [];
  private failure?: Error;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: FromClients) => {
      if (m.type === 'progress') {
        this.received = m.received;
        this.onProgress?.();
        return;
      }
      if (m.type === 'failed') return this.fail(new Error(`load generator: ${m.error}`));
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
    });
    child.on('exit', (code) => this.fail(new Error(`load generator exited (${code})`)));
  }

  static async start(setup: ClientsSetup): Promise<{ gen: LoadGenerator; ready: Reply<'ready'> }> {
    const child = fork(fileURLToPath(new URL('./clients.js', import.meta.url)), [], {
      // A larger young generation keeps the load generator's own GC pauses out of the measured latencies.
      execArgv: ['--max-semi-space-size=64'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const gen = new LoadGenerator(child);
    const ready = gen.reply('ready', 120_000);
    gen.send({ type: 'connect', ...setup });
    return { gen, ready: await ready };
  }

  send(m: ToClients): void {
    this.child.send(m);
  }

  reply<T extends FromClients['type']>(type: T, timeoutMs = 300_000): Promise<Reply<T>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${type}" from the load generator in ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  async stats(): Promise<ClientStats> {
    const r = this.reply('stats');
    this.send({ type: 'report' });
    return (await r).stats;
  }

  /** Starts a phase: IPC is ordered, so every progress report sent before the reset has arrived once this resolves. */
  async reset(): Promise<void> {
    const r = this.reply('stats');
    this.send({ type: 'reset' });
    await r;
    this.received = 0;
  }

  /** Resolves once `count` receipts are reported, or after `timeoutMs` (the caller reads the shortfall). */
  async waitReceived(count: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.received < count) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) return false;
      await sleep(5);
    }
    return true;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.send({ type: 'exit' });
    await Promise.race([exited, sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
