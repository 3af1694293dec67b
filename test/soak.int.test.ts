import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { SoakReport } from '../bench/soak.js';

/**
 * The soak of bench/soak.ts, short, as a CI test (issue 8): 100 users each with a PC and a phone, 200 msgs/s for
 * 20 s through POST /v1/messages, PC presence churned 20 times/s, 3 sockets cut per second. Every accepted message is
 * counted in and out. Runs the compiled bench (`npm run build` first) so the node is a real child process.
 */

const SOAK = fileURLToPath(new URL('../dist/bench/soak.js', import.meta.url));

function soak(args: string[]): Promise<SoakReport> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SOAK, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (c: Buffer) => (out += c));
    proc.stderr.on('data', (c: Buffer) => (err += c));
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`soak exited ${code}:\n${err}`))));
  });
}

describe('soak with forced disconnects (short)', () => {
  it("delivers every accepted message, also when the user's only client was reconnecting (held)", async () => {
    const r = await soak(['--minutes', String(20 / 60), '--rate', '200', '--users', '100', '--churn', '20', '--disconnects', '3', '--sample-seconds', '5']);
    const summary = `sent ${r.sent}, accepted ${r.accepted} (refused ${JSON.stringify(r.refusedBy)}), delivered ${r.delivered}, lost ${r.lost} (${r.lostReachable} with both clients connected, ${r.lostNearDisconnect} around a forced disconnect), duplicated ${r.duplicated}, forced disconnects ${r.forcedDisconnects}; e.g. ${JSON.stringify(r.lostExamples)}`;
    console.log(`soak: ${summary}`);
    expect(r.accepted).toBeGreaterThan(r.sent * 0.9);
    expect(r.forcedDisconnects).toBeGreaterThan(30);
    expect(r.samples.length).toBeGreaterThanOrEqual(3);
    expect(r.samples.every((s) => s.rssMiB > 0 && s.heapMiB > 0 && s.heapTotalMiB >= s.heapMiB && s.externalMiB > 0)).toBe(true);
    // Section 4: a message whose user's only client was reconnecting is held and delivered on reconnect.
    expect(r.lostReachable, summary).toBe(0);
    expect(r.lost, summary).toBe(0);
  }, 90_000);
});
