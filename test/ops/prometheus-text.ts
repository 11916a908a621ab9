/**
 * A strict reader of the Prometheus text exposition format (0.0.4), so tests fail on any line a scraper
 * would reject, and can read sample values by name and labels.
 */

const metricName = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const labelPair = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"';
// Values are whatever Go's ParseFloat takes, which reads Inf and NaN in any case: prom-client writes "Nan".
const value = "[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?|(?i:inf|nan))";
const sampleLine = new RegExp(
  `^(${metricName})(?:\\{((?:${labelPair})(?:,${labelPair})*,?)?\\})? (${value})(?: -?[0-9]+)?$`,
);
const helpLine = new RegExp(`^# HELP (${metricName}) .*$`);
const typeLine = new RegExp(`^# TYPE (${metricName}) (counter|gauge|histogram|summary|untyped)$`);

/** Samples by `name{label="value",...}` with labels sorted by name. */
export type Samples = Map<string, number>;

/** The key of a sample, as `parsePrometheusText` stores it. */
export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`);
  return pairs.length > 0 ? `${name}{${pairs.join(",")}}` : name;
}

/** Parses the text; throws on the first line that is not valid, or a sample of an undeclared family. */
export function parsePrometheusText(text: string): Samples {
  const samples: Samples = new Map();
  const types = new Map<string, string>();
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    const type = typeLine.exec(line);
    if (type) {
      if (types.has(type[1])) throw new Error(`family declared twice: ${type[1]}`);
      types.set(type[1], type[2]);
      continue;
    }
    if (helpLine.test(line)) continue;
    const sample = sampleLine.exec(line);
    if (!sample) throw new Error(`not a valid line: ${JSON.stringify(line)}`);
    const [, name, labelText, raw] = sample;
    const family = [...types.keys()].find(
      (f) => name === f || (/_(bucket|sum|count|total|created)$/.test(name) && name.startsWith(f)),
    );
    if (!family) throw new Error(`sample of an undeclared family: ${name}`);
    const labels: Record<string, string> = {};
    for (const m of (labelText ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
    samples.set(
      sampleKey(name, labels),
      /inf$/i.test(raw) ? (raw.startsWith("-") ? -Infinity : Infinity) : Number(raw),
    );
  }
  return samples;
}
