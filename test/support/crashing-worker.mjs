// A sender worker that dies mid-batch, as a segfaulting vendor library would.
export default async function crash(jobs) {
  if (jobs.some((j) => j.token === 'crash')) process.exit(7);
  return jobs.map(() => ({ outcome: 'ok' }));
}
