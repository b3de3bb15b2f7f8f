/**
 * Turns a command's JSON result into metric rows: nested numeric fields become dotted keys
 * (`{accuracy:{top1:0.76}}` → `accuracy.top1`), booleans 0/1. Strings, nulls, NaN/Infinity and
 * arrays are skipped: arrays hold per-layer or per-node detail, which belongs in layer metrics or
 * the stored result, not in a flat list of thousands of keys.
 */
export function flattenMetrics(value: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'number') {
      if (Number.isFinite(v) && key) out[key] = v;
    } else if (typeof v === 'boolean') {
      if (key) out[key] = v ? 1 : 0;
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, child] of Object.entries(v)) walk(child, key ? `${key}.${k}` : k);
    }
  };
  walk(value, prefix);
  return out;
}
