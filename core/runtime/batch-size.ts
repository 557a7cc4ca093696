/**
 * The size of the next fetch: small while the job keeps up, larger under a backlog. A batch pays
 * fixed costs whatever its size (a Kafka transaction's begin, offsets and commit round trips:
 * ~300 ms together on a loaded 2-core machine, docs/decisions/0006), so a latency profile that
 * kept 2,000-record batches behind a backlog could never catch up once the input rate passed
 * 2,000 records per fixed cost. A full fetch doubles the next one, up to the ceiling; a fetch
 * that came back under a quarter full halves it, down to the floor, so latency returns with the
 * backlog gone.
 */
export interface BatchSizer {
  /** Records the next fetch may return. */
  readonly size: number;
  /** What the last fetch returned. */
  observe(received: number): void;
}

export function createBatchSizer(floor: number, ceiling = floor): BatchSizer {
  let size = floor;
  return {
    get size() {
      return size;
    },
    observe(received) {
      if (received >= size) size = Math.min(ceiling, size * 2);
      else if (received < size / 4) size = Math.max(floor, Math.floor(size / 2));
    },
  };
}
