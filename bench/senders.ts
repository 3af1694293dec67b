import { execSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { MeasureOptions, Memory, PhaseResult } from './senders-measure.js';
import type { ServerReply, StandIns } from './senders-servers.js';
import { fmt } from './stats.js';

/**
 * `node dist/bench/senders.js [--quick] [--pushes N] [--window N] [--threads N] [--rounds N] [--latency MS] [--no-readme]` (issue 3, "Benchmark"):
 * pushes through the PushPool to the local APNs and FCM stand-ins against a raw client loop on the same stand-in
 * in the same run (the ceiling), as pushes/s, the ratio pool/ceiling (target >= 70%) and memory. Three processes:
 * this one (orchestration only), the stand-ins, and the measured one (raw loop + pool), so on 2 cores the stand-in
 * does not take its CPU from what is measured. The table goes to stdout and into bench/README.md.
 */

const TARGET_RATIO = 0.7;
/** A row measured while other processes used more than this much of a core is flagged: the machine was not quiet. */
const NOISY_PCT = 20;
const README = fileURLToPath(new URL('../../bench/README.md', import.meta.url));
const START = '<!-- senders-bench:start -->';
const END = '<!-- senders-bench:end -->';

const args = process.argv.slice(2);
const flag = (name: string): number | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : undefined;
};
const quick = args.includes('--quick');
const pushes = flag('--pushes') ?? (quick ? 10_000 : 100_000);
const window = flag('--window') ?? 1000;
const threads = flag('--threads') ?? 1;
const rounds = flag('--rounds') ?? 3;
const latency = flag('--latency') ?? 0;
const log = (line: string) => process.stderr.write(`${line}\n`);

function child(file: string, options: Parameters<typeof fork>[2] = {}, argv: string[] = []): ChildProcess {
  return fork(fileURLToPath(new URL(file, import.meta.url)), argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...options });
}

function next<T>(proc: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      proc.off('message', onMessage);
      resolve(m as T);
    };
    proc.on('message', onMessage);
    proc.once('exit', (code) => reject(new Error(`${proc.spawnfile} exited with ${code} before "${type}"`)));
  });
}

function machine(): string {
  let nproc = String(cpus().length);
  let model = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  try {
    nproc = execSync('nproc').toString().trim();
    model = /Model name:\s*(.+)/.exec(execSync('lscpu').toString())?.[1].trim() ?? model;
  } catch {
    /* os.cpus() is close enough */
  }
  return `nproc ${nproc}, ${model}, Node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z`;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)}`;
const mem = (b: Memory, a: Memory, p: Memory, k: keyof Memory) => `${mib(b[k])} / ${mib(a[k])} / ${mib(p[k])}`;

function table(results: PhaseResult[]): string {
  const head = ['vendor', 'client', 'pushes', 'ok', 'pushes/s', 'pool / ceiling', 'CPU µs / push', 'bench CPU', 'stand-in CPU', 'others CPU', 'RSS MiB before / after / peak', 'main heap MiB before / after / peak', 'Piscina tasks'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of results) {
    const ceiling = results.find((x) => x.vendor === r.vendor && x.client === 'raw');
    const ratio = r.client === 'pool' && ceiling ? r.rate / ceiling.rate : undefined;
    const ratioCell = ratio === undefined ? '' : `**${(ratio * 100).toFixed(0)}%** ${ratio >= TARGET_RATIO ? 'met' : 'MISSED'} (>= 70%)`;
    lines.push(`| ${[
      r.vendor, r.client === 'raw' ? (r.vendor === 'apns' ? 'raw node:http2 (ceiling)' : 'raw node:https (ceiling)') : `PushPool (${threads} worker)`,
      fmt(r.pushes), fmt(r.ok), fmt(r.rate), ratioCell, fmt((r.cpuPct / 100) * 1e6 / r.rate), `${r.cpuPct.toFixed(0)}%`, `${r.standInCpuPct.toFixed(0)}%`, `${r.othersCpuPct.toFixed(0)}%${r.othersCpuPct > NOISY_PCT ? ' NOISY' : ''}`,
      mem(r.before, r.after, r.peak, 'rss'), mem(r.before, r.after, r.peak, 'heap'), r.batches === undefined ? '' : fmt(r.batches),
    ].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Replaces this benchmark's block in bench/README.md (between the markers), or appends one at the end. */
function updateReadme(block: string): void {
  const text = readFileSync(README, 'utf8');
  const fenced = `${START}\n${block}\n${END}`;
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const updated = start >= 0 && end > start
    ? text.slice(0, start) + fenced + text.slice(end + END.length)
    : `${text.replace(/\n*$/, '\n')}\n## Vendor senders (issue 3)\n\n${fenced}\n`;
  writeFileSync(README, updated);
}

async function main(): Promise<void> {
  log(`machine: ${machine()}`);
  const servers = child('./senders-servers.js', {}, ['--latency', String(latency)]);
  const { standIns } = await next<Extract<ServerReply, { type: 'ready' }>>(servers, 'ready');
  const measured = child('./senders-measure.js', {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: standIns.caFile },
    execArgv: ['--expose-gc'],
  });
  const options: MeasureOptions = { pushes, warmup: Math.min(5000, Math.max(1000, pushes / 10)), window, threads, rounds, standIns: standIns as StandIns };
  log(`${rounds} rounds of ${fmt(pushes)} pushes per row after ${fmt(options.warmup)} warm-up pushes, window ${window}, ${threads} sender worker thread(s), stand-in latency ${latency} ms`);
  const done = next<{ results: PhaseResult[] }>(measured, 'results');
  measured.send(options);
  const { results } = await done;
  servers.send({ type: 'close' });
  const out = table(results);
  process.stdout.write(`${out}\n`);
  if (!args.includes('--no-readme')) {
    updateReadme(`Latest run: ${machine()}; \`node dist/bench/senders.js${quick ? ' --quick' : ''}\`; per row the best of ${rounds} interleaved rounds of ${fmt(pushes)} pushes (window ${window}${latency ? `, stand-in answers held ${latency} ms` : ''}); memory from before the first round to after the last.\n\n${out}`);
    log(`table written to ${README}`);
  }
}

main().catch((err: unknown) => {
  log(`senders benchmark failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
