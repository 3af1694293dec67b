// A sender worker that counts the ticks of a 10 ms interval timer in its own thread and answers each job with the
// ticks seen since its previous task: a worker whose event loop is stopped between tasks sees none while idle.
let ticks = 0;
let last = 0;
setInterval(() => ticks++, 10);
export default async function ticking(jobs) {
  const since = ticks - last;
  last = ticks;
  return jobs.map(() => ({ outcome: 'failed', reason: `ticks ${since}` }));
}
