/** Latency percentiles (nearest-rank) of a sample in milliseconds; zeros for an empty sample. */
export function percentiles(samples: number[]): { p50: number; p90: number; p99: number; max: number } {
  if (samples.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! };
}
