/**
 * Parses Prometheus text exposition with a real parser (parse-prometheus-text-format, the format's grammar,
 * not our own regexes), and looks samples up by name and labels.
 */
import { createRequire } from 'node:module';

export interface MetricFamily {
  name: string;
  help: string;
  type: 'GAUGE' | 'COUNTER' | 'SUMMARY' | 'HISTOGRAM' | 'UNTYPED';
  metrics: Array<{ value?: string; labels?: Record<string, string>; quantiles?: Record<string, string> }>;
}

const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

export function parsePrometheus(text: string): Map<string, MetricFamily> {
  return new Map(parse(text).map((family) => [family.name, family]));
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none. */
export function sample(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const matches = (families.get(name)?.metrics ?? []).filter((metric) =>
    Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
  );
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matches[0]?.value === undefined ? undefined : Number(matches[0].value);
}
