import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reaped } from './reap.js';

/** The compiled entry point; `npm test` builds dist/ first (pretest). */
export const BIN = fileURLToPath(new URL('../../dist/bin/switchboard.js', import.meta.url));

export interface HttpAnswer {
  status: number;
  body: any;
  headers: Headers;
}

/** How long a node may take to log that it listens, ms: it takes 1-4 s, about 10 s on a busy 2-core VM. */
export const NODE_START_TIMEOUT_MS = 25_000;

/** A node that neither listened nor exited in time (NodeProcess.start); the message holds its log. */
export class NodeStartTimeout extends Error {
  override name = 'NodeStartTimeout';
}

/** A real Switchboard node in a child process, on a free port, with its own data dir. */
export class NodeProcess {
  readonly lines: string[] = [];
  private exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    readonly dataDir: string,
    readonly apiKey: string,
    readonly jwtSecret: string,
    lines: string[],
    exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ) {
    this.lines = lines;
    this.exitPromise = exit;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  /**
   * Starts a node; resolves once it logged that it listens. Pass `dataDir` to restart on the same state. A node that
   * neither listens nor exits within `startTimeoutMs` (default NODE_START_TIMEOUT_MS) is killed and the start rejects
   * with a NodeStartTimeout carrying its log, where a test's hook used to time out with no word of why. `command`
   * (with `cwd`) runs something else that starts the node, such as `npm start`; `proc` is then that process.
   */
  static async start(opts: { env?: Record<string, string>; dataDir?: string; apiKey?: string; jwtSecret?: string; startTimeoutMs?: number; command?: [cmd: string, args: string[]]; cwd?: string } = {}): Promise<NodeProcess> {
    const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'switchboard-test-')));
    const apiKey = opts.apiKey ?? randomBytes(24).toString('base64url');
    const jwtSecret = opts.jwtSecret ?? randomBytes(32).toString('base64url');
    const [cmd, args] = opts.command ?? [process.execPath, [BIN, 'start']];
    const proc = reaped(spawn(cmd, args, {
      cwd: opts.cwd,
      env: {
        PATH: process.env.PATH,
        SWITCHBOARD_PORT: '0',
        SWITCHBOARD_DATA_DIR: dataDir,
        SWITCHBOARD_API_KEY: apiKey,
        SWITCHBOARD_JWT_SECRET: jwtSecret,
        SWITCHBOARD_LOG_LEVEL: 'info',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    const lines: string[] = [];
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const port = await new Promise<number>((resolve, reject) => {
      const ms = opts.startTimeoutMs ?? NODE_START_TIMEOUT_MS;
      const timer = setTimeout(() => {
        reject(new NodeStartTimeout(`node did not listen within ${ms} ms; killed. Its log:\n${lines.join('\n')}`));
        proc.kill('SIGKILL');
      }, ms);
      let buf = '';
      const onData = (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push(line);
          if (line.includes('switchboard listening')) {
            clearTimeout(timer);
            resolve(JSON.parse(line).port);
          }
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n').filter(Boolean)));
      exit.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`node exited (${code ?? signal}) before listening:\n${lines.join('\n')}`));
      });
    });
    return new NodeProcess(proc, port, dataDir, apiKey, jwtSecret, lines, exit);
  }

  /** HTTP call with the API key (unless `auth: false` or another key is given). */
  async http(method: string, path: string, body?: unknown, opts: { auth?: boolean | string; raw?: string; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.auth !== false) headers.authorization = `Bearer ${typeof opts.auth === 'string' ? opts.auth : this.apiKey}`;
    let payload: string | undefined = opts.raw;
    if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(this.url + path, { method, headers, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* keep the text */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** `POST /v1/messages`. */
  send(msg: Record<string, unknown>): Promise<HttpAnswer> {
    return this.http('POST', '/v1/messages', msg);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.proc.kill(signal);
    return this.exitPromise;
  }

  /** Graceful stop (SIGTERM); resolves with the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exitPromise;
    return this.kill('SIGTERM');
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exitPromise;
  }

  async removeData(): Promise<void> {
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Runs the CLI to completion (for config validation tests): exit code and output. */
export async function runCli(env: Record<string, string>, args: string[] = ['start']): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = reaped(spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c));
  proc.stderr.on('data', (c: Buffer) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}
