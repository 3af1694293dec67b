import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { reaped } from './reap.js';
import { until } from './ws-client.js';

/** A free TCP port on loopback, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A real nats-server with JetStream that the test starts on free ports and stops: never a server it did not start.
 * `restart()` keeps the ports and the JetStream store dir.
 */
export class NatsServer {
  private proc?: ChildProcess;
  readonly log: string[] = [];

  private constructor(
    readonly port: number, readonly clusterPort: number, readonly storeDir: string, private readonly routes: number[], readonly name: string,
    /** More nats-server flags (e.g. `--user`, `--pass`, `--auth` for a server that requires credentials). */
    private readonly extraArgs: readonly string[] = [],
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(opts: { routes?: number[]; clusterPort?: number; name?: string; args?: readonly string[] } = {}): Promise<NatsServer> {
    const port = await freePort();
    const clusterPort = opts.clusterPort ?? (opts.routes ? await freePort() : 0);
    const storeDir = await mkdtemp(join(tmpdir(), 'switchboard-nats-'));
    const s = new NatsServer(port, clusterPort, storeDir, opts.routes ?? [], opts.name ?? `n${port}`, opts.args);
    await s.launch();
    return s;
  }

  /** Three routed servers forming one JetStream cluster. */
  static async cluster(size = 3): Promise<NatsServer[]> {
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    return Promise.all(clusterPorts.map((cp, i) => NatsServer.start({ clusterPort: cp, routes: clusterPorts, name: `s${i + 1}` })));
  }

  private launch(): Promise<void> {
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir, '-n', this.name, ...this.extraArgs];
    if (this.clusterPort) {
      args.push('--cluster_name', 'sbtest', '--cluster', `nats://127.0.0.1:${this.clusterPort}`,
        '--routes', this.routes.filter((p) => p !== this.clusterPort).map((p) => `nats://127.0.0.1:${p}`).join(','));
    }
    const proc = reaped(spawn('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.proc = proc;
    return new Promise((resolve, reject) => {
      let buf = '';
      const onData = (c: Buffer) => {
        buf += c.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          this.log.push(l);
          if (l.includes('Server is ready')) resolve();
        }
      };
      proc.stderr!.on('data', onData);
      proc.stdout!.on('data', onData);
      proc.on('error', reject);
      proc.on('exit', (code) => reject(new Error(`nats-server exited ${code}: ${this.log.slice(-5).join('\n')}`)));
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  }

  /**
   * SIGSTOP: the server stops reading and answering, its connections stay open (a stalled JetStream). Resolves once
   * the process is stopped (`T` in /proc/<pid>/stat): the signal is sent at once but takes effect a little later, and a
   * message published in between was answered (a test once saw it).
   */
  async pause(): Promise<void> {
    const pid = this.proc?.pid;
    if (pid === undefined) return;
    this.proc!.kill('SIGSTOP');
    const state = (): string => { const st = readFileSync(`/proc/${pid}/stat`, 'utf8'); return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3); };
    await until(() => state() === 'T', 5000, `nats-server ${pid} stopped`);
  }

  /** SIGCONT after `pause`: the server reads what waited in its sockets and answers it. */
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    await rm(this.storeDir, { recursive: true, force: true });
  }
}

/**
 * One nats-server of the test's own (free port) and one client connection to it for a whole test file: started in
 * `beforeAll`, closed and stopped in `afterAll`. Read `server` and `nc` inside tests and hooks, not at import time.
 */
export function natsForFile(): { readonly server: NatsServer; readonly nc: NatsConnection } {
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.dispose();
  });
  return {
    get server() {
      return server!;
    },
    get nc() {
      return nc!;
    },
  };
}
