import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../base/metrics.js';

/**
 * Issue 12: the shipped Grafana dashboard (ops/grafana-dashboard.json) only queries metrics the node's registry
 * (base/metrics.ts, plus prom-client's default process metrics) really has, with labels those metrics carry.
 */
const dashboard = JSON.parse(readFileSync(new URL('../ops/grafana-dashboard.json', import.meta.url), 'utf8'));

interface Panel { type: string; id: number; title: string; targets?: { expr: string }[]; panels?: Panel[] }
const panels: Panel[] = (dashboard.panels as Panel[]).flatMap((p) => [p, ...(p.panels ?? [])]);
const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** PromQL functions, keywords and aggregations that look like identifiers. */
const PROMQL_WORDS = new Set(['sum', 'by', 'rate', 'increase', 'histogram_quantile', 'max', 'min', 'avg', 'without', 'le', 'on', 'ignoring']);

async function registryMetrics(): Promise<Map<string, Set<string>>> {
  const metrics = new Metrics(); // with the default process metrics, as a node runs
  const out = new Map<string, Set<string>>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const labels = new Set<string>((m as unknown as { labelNames?: string[] }).labelNames ?? []);
    const names = String(m.type) === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
    for (const n of names) out.set(n, labels);
  }
  // prom-client keeps the label names on the metric object, not in the JSON: read them there too.
  for (const m of metrics.registry.getMetricsAsArray()) {
    const labels = new Set<string>((m as unknown as { labelNames: string[] }).labelNames ?? []);
    for (const suffix of ['', '_bucket', '_sum', '_count']) if (out.has(m.name + suffix)) for (const l of labels) out.get(m.name + suffix)!.add(l);
  }
  return out;
}

describe('Grafana dashboard', () => {
  it('is a dashboard with panels that query Prometheus', () => {
    expect(dashboard.title).toBe('Switchboard');
    expect(exprs.length).toBeGreaterThan(10);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) expect(p.title.length).toBeGreaterThan(0);
  });

  it('queries only metrics that exist in the registry, with their own labels', async () => {
    const known = await registryMetrics();
    const missing: string[] = [];
    for (const { panel, expr } of exprs) {
      const names = [...expr.matchAll(/\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)/g)].map((m) => m[1]).filter((n) => !PROMQL_WORDS.has(n));
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) {
        const labels = known.get(name);
        if (!labels) {
          missing.push(`${panel}: ${name}`);
          continue;
        }
        for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) {
          for (const label of m[1].split(',').map((s) => s.trim())) {
            if (label === 'le' || label === 'instance' || label === 'job') continue;
            expect(labels.has(label), `${panel}: ${name} has no label ${label}`).toBe(true);
          }
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('covers the figures the operator dashboard shows', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const name of [
      'switchboard_messages_routed_total', 'switchboard_deliveries_total', 'switchboard_acks_total', 'switchboard_push_outcomes_total',
      'switchboard_decision_seconds_bucket', 'switchboard_delivery_seconds_bucket', 'switchboard_sessions', 'switchboard_owned_partitions',
      'switchboard_lease_takeovers_total',
    ]) expect(all).toContain(name);
  });

  it('has a panel for every switchboard_* metric the node exposes (README: "a Grafana dashboard of those metrics")', async () => {
    const all = exprs.map((e) => e.expr).join('\n');
    const ours = [...(await registryMetrics()).keys()].filter((n) => n.startsWith('switchboard_') && !/_(sum|count)$/.test(n));
    const histograms = new Set(ours.filter((n) => n.endsWith('_bucket')).map((n) => n.slice(0, -'_bucket'.length)));
    const missing = ours.filter((n) => !histograms.has(n) && !all.includes(n));
    expect(ours.length).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });
});
