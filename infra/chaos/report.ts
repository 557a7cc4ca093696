import { formatCount } from '../../core/stats.ts';
import type { ChaosRow } from './harness.ts';

/** The chaos table, one row per scenario, in markdown. */
export function formatChaosTable(rows: ChaosRow[]): string {
  const lines = [
    '| scenario | acknowledged | in lake | in features | duplicates | lost | recovered in | producer saw | notes | expected | |',
    '|---|---:|---:|---:|---:|---:|---:|---|---|---|---|',
  ];
  for (const row of rows) {
    const failed = [...row.producer.failed].map(([reason, n]) => `${n}× ${reason}`).join('; ');
    const producer = [
      failed ? `failed: ${failed}` : '0 failed',
      `${formatCount(row.producer.retries)} retries`,
      `blocked ${row.producer.blockedSeconds.toFixed(1)} s (longest ack ${(row.producer.maxAckMs / 1000).toFixed(1)} s)`,
    ].join(', ');
    const notes = [...row.notes, ...(row.storedUnacknowledged ? [`${row.storedUnacknowledged} stored though their send failed (timed out after the write)`] : [])];
    lines.push(
      `| ${row.scenario} | ${formatCount(row.producer.acknowledged)} | ${formatCount(row.inLake)} | ${formatCount(row.inFeatures)}${row.featuresExact ? '' : ' (differs)'} | ${row.duplicates} | ${row.lost} | ${
        row.recoverSeconds === undefined ? 'no' : `${row.recoverSeconds.toFixed(1)} s`
      } | ${producer} | ${notes.join('; ')} | ${row.expected} | ${row.met ? 'met' : `**missed**: ${row.missed.join('; ')}`} |`,
    );
  }
  return lines.join('\n');
}
