/**
 * The goal lines of issue 13, printed last by `npm run bench`: `ratio <name> <value> <goal>`, one per goal, so
 * anyone can check them with one command. Every goal is an upper bound except those marked `atLeast`
 * (`batch_vs_single_rate`); `info` lines are context, not goals (bench/README.md lists them).
 */
export interface Goal {
  name: string;
  value: number;
  goal: number;
  /** The value must be at least the goal (default: at most). */
  atLeast?: boolean;
  /** Printed for context, not a goal of the issue. */
  info?: boolean;
}

export function goalMet(g: Goal): boolean {
  return Number.isFinite(g.value) && (g.atLeast ? g.value >= g.goal : g.value <= g.goal);
}

/**
 * One `ratio` line per goal; values with two decimals (ratios) or one (ms, bytes). Then one `context` line per
 * `info` entry (`context <name> <value> <the goal it bears on>`): figures that bound a goal on this machine, such as
 * the bare relay's own p99 at the load of `embedded_p99_ms_at_10k` (`-` in place of a goal: context bearing on no
 * single bound). Grep `^ratio` for the goals alone.
 */
export function goalLines(goals: Goal[]): string {
  const value = (g: Goal) => (Number.isFinite(g.value) ? (Math.abs(g.value) >= 100 ? g.value.toFixed(0) : g.value.toFixed(2)) : 'n/a');
  return [
    ...goals.filter((g) => !g.info).map((g) => `ratio ${g.name} ${value(g)} ${g.goal}`),
    ...goals.filter((g) => g.info).map((g) => `context ${g.name} ${value(g)} ${Number.isFinite(g.goal) ? g.goal : '-'}`),
  ].join('\n');
}
