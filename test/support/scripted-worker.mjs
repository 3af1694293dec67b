// A sender worker whose answers are scripted by the job's token: "a,b,c" answers a, then b, then c (last repeats).
// Each step: ok | dead | fail | config | retry | retry-after-<ms>; a job whose script is "hang" never gets an answer
// (a vendor that does not answer), nor does its batch. A Web Push token (a subscription's JSON) carries its script in
// a `script` field beside its endpoint. What follows a `#` only makes tokens distinct ("hang#1", "hang#2": two devices).
const calls = new Map();
const scriptOf = (job) => (job.token.startsWith('{') ? JSON.parse(job.token).script : job.token).split('#')[0];
export default async function scripted(jobs) {
  if (jobs.some((job) => scriptOf(job) === 'hang')) return new Promise(() => {});
  return jobs.map((job) => {
    const steps = scriptOf(job).split(',');
    const n = calls.get(job.jobId) ?? 0;
    calls.set(job.jobId, n + 1);
    const step = steps[Math.min(n, steps.length - 1)];
    if (step === 'ok') return { outcome: 'ok' };
    if (step === 'dead') return { outcome: 'dead_token', reason: 'Unregistered' };
    if (step === 'fail') return { outcome: 'failed', reason: 'BadRequest' };
    if (step === 'config') return { outcome: 'failed', config: true, reason: 'apns 403 InvalidProviderToken: key id K1 for team id T1' };
    const m = /^retry(?:-after-(\d+))?$/.exec(step);
    if (m) return { outcome: 'retry', reason: '503 ServiceUnavailable', ...(m[1] ? { retryAfterMs: Number(m[1]) } : {}) };
    throw new Error(`bad script step ${step}`);
  });
}
