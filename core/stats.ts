/** Latency samples in milliseconds, summarised the way kafka-producer-perf-test does. */
export class LatencyRecorder {
  private samples: number[] = [];

  record(ms: number, times = 1): void {
    for (let i = 0; i < times; i++) this.samples.push(ms);
  }

  get count(): number {
    return this.samples.length;
  }

  summary(): { avg: number; p50: number; p95: number; p99: number; p999: number; max: number } {
    const sorted = Float64Array.from(this.samples).sort();
    const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0);
    const avg = sorted.length ? sorted.reduce((sum, v) => sum + v, 0) / sorted.length : 0;
    return { avg, p50: at(0.5), p95: at(0.95), p99: at(0.99), p999: at(0.999), max: sorted.length ? sorted[sorted.length - 1]! : 0 };
  }
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
