import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The processes of the cluster bench (issue 4): its own nats-server with JetStream on a free port (never the one on
 * 4222) and Switchboard nodes in child processes. Every child is registered so that `killAll()` ends them on any exit.
 * The launcher repeats the few lines of test/support/nats-server.ts so dist/bench does not depend on test/.
 */

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));
const children = new Set<ChildProcess>();
const dirs = new Set<string>();

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * How long a process may take to print its ready line, ms: a node takes 1-4 s, ~10 s on a busy 2-core VM. Past it the
 * process is killed and the bench fails with its last lines (a node whose start hung kept a bench waiting for good).
 */
const LAUNCH_TIMEOUT_MS = 60_000;

/**
 * Spawns `cmd` and resolves with the first stdout/stderr line that `ready` picks; keeps the last lines for errors.
 * Rejects, with those lines, when it exits first or prints no such line within LAUNCH_TIMEOUT_MS (it is killed then).
 */
function launch<T>(cmd: string, args: string[], env: NodeJS.ProcessEnv, ready: (line: string) => T | undefined): Promise<{ proc: ChildProcess; value: T; lines: string[] }> {
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const lines: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  return new Promise<{ proc: ChildProcess; value: T; lines: string[] }>((resolve, reject) => {
    let buf = '';
    let done = false;
    const onData = (c: Buffer): void => {
      buf += c.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      for (const l of parts) {
        lines.push(l);
        if (lines.length > 1000) lines.shift();
        const v = done ? undefined : ready(l);
        if (v !== undefined) (done = true), resolve({ proc, value: v, lines });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`${cmd} printed no ready line within ${LAUNCH_TIMEOUT_MS} ms; killed. Its last lines:\n${lines.slice(-20).join('\n')}`));
    }, LAUNCH_TIMEOUT_MS);
    proc.on('error', reject);
    proc.on('exit', (code, sig) => done || reject(new Error(`${cmd} exited (${code ?? sig}):\n${lines.slice(-10).join('\n')}`)));
  }).finally(() => clearTimeout(timer));
}

export interface Nats {
  url: string;
  proc: ChildProcess;
  lines: string[];
}

export async function startNats(): Promise<Nats> {
  const port = await freePort();
  if (port === 4222) throw new Error('free port 4222 is the shared server; refusing');
  const store = await mkdtemp(join(tmpdir(), 'sb-bench-nats-'));
  dirs.add(store);
  const { proc, lines } = await launch('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store, '-n', `bench${port}`], process.env,
    (l) => (l.includes('Server is ready') ? true : undefined));
  return { url: `nats://127.0.0.1:${port}`, proc, lines };
}

export interface NodeProc {
  id: string;
  port: number;
  proc: ChildProcess;
  lines: string[];
}

/** The V8 flags `npm start` gives a node, given alike to the cluster's nodes and to the bare relay's (same heap rules). */
const NODE_FLAGS = ['--max-semi-space-size=32'];

/**
 * One cluster node (SWITCHBOARD_PORT=0); resolves with the port from its 'switchboard listening' line. `nodeArgs`
 * go to node itself (e.g. `--cpu-prof`; a profile is written only on a graceful exit: see stopGracefully).
 */
export async function startNode(id: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<NodeProc> {
  const data = await mkdtemp(join(tmpdir(), 'sb-bench-node-'));
  dirs.add(data);
  const { proc, value, lines } = await launch(process.execPath, [...NODE_FLAGS, ...nodeArgs, BIN, 'start'], {
    PATH: process.env.PATH, SWITCHBOARD_PORT: '0', SWITCHBOARD_DATA_DIR: data, SWITCHBOARD_NODE_ID: id, SWITCHBOARD_LOG_LEVEL: 'info', ...env,
  }, (l) => {
    if (!l.includes('switchboard listening')) return undefined;
    return JSON.parse(l).port as number;
  });
  return { id, port: value, proc, lines };
}

/** One node of the bare core-NATS relay (bench/relay-cluster-node.ts), the cluster's baseline in the same run. */
export async function startRelayNode(id: string, natsUrl: string): Promise<NodeProc> {
  const script = fileURLToPath(new URL('./relay-cluster-node.js', import.meta.url));
  const { proc, value, lines } = await launch(process.execPath, [...NODE_FLAGS, script, natsUrl], { PATH: process.env.PATH }, (l) =>
    l.startsWith('relay listening ') ? (JSON.parse(l.slice('relay listening '.length)).port as number) : undefined);
  return { id, port: value, proc, lines };
}

/** `switchboard_owned_partitions` and /readyz of one node; undefined when it does not answer. */
export async function nodeState(port: number): Promise<{ ready: boolean; owned: number } | undefined> {
  try {
    const ready = (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /^switchboard_owned_partitions(?:\{[^}]*\})? ([0-9.]+)$/m.exec(text);
    return { ready, owned: m ? Number(m[1]) : 0 };
  } catch {
    return undefined;
  }
}

/** CPU time (ms, user + system, all threads) of a process from /proc; NaN when gone or off Linux. */
export function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return NaN;
  }
}

export function track(proc: ChildProcess): void {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

/** SIGTERM, then waits up to `timeoutMs` for the exit (a node writes its CPU profile then); SIGKILL after. */
export function stopGracefully(proc: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('exit', () => (clearTimeout(timer), resolve()));
    proc.kill('SIGTERM');
  });
}

/** SIGKILL, resolved once the process has exited (at once if it had). */
export function killNow(p: ChildProcess): Promise<void> {
  return new Promise<void>((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    p.once('exit', () => r());
    p.kill('SIGKILL');
  });
}

/** SIGKILLs every child still running and removes the temp dirs. */
export async function killAll(): Promise<void> {
  await Promise.all([...children].map(killNow));
  await Promise.all([...dirs].map((d) => rm(d, { recursive: true, force: true })));
}
