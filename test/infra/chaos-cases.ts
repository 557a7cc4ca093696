import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runScenario } from '../../infra/chaos/harness.ts';
import { formatChaosTable } from '../../infra/chaos/report.ts';
import { recreateScenario, runRecreateExperiment } from '../../infra/chaos/recreate.ts';
import { scenarios } from '../../infra/chaos/scenarios.ts';
import { stackFaults } from '../../infra/chaos/stack-faults.ts';
import { config } from '../helpers.ts';

/**
 * `pnpm run chaos`, scenario by scenario, against the real 3-broker stack: every record
 * acknowledged is in the lake once and counted once in Redis. Whatever happens, the stack is
 * healed afterwards so the tests that follow find it whole.
 */
export function chaosTests(ids: string[]): void {
for (const scenario of scenarios.filter((s) => ids.includes(s.id))) {
  test(`chaos: ${scenario.name} -> ${scenario.expected}`, { timeout: 420_000 }, async (t) => {
    t.after(() => stackFaults(config).heal());
    // a drain limit that keeps the worst case (fault, recovery wait, drain) inside the test's time limit,
    // so a stall is reported as a row with its logs rather than cut off
    const row = await runScenario(config, scenario, { rate: 200, drainTimeoutMs: 120_000, log: (message) => t.diagnostic(message) });
    t.diagnostic(formatChaosTable([row]));
    assert.ok(row.producer.acknowledged > 1_000, `the producer kept going (${row.producer.acknowledged} acknowledged)`);
    assert.deepEqual(row.missed, [], formatChaosTable([row]));
    assert.equal(row.inLake - row.storedUnacknowledged, row.producer.acknowledged);
    assert.equal(row.inFeatures, row.inLake, 'Redis counts every stored record once');
  });
}
}

export function recreateTest(): void {
test(`chaos: ${recreateScenario.name} -> ${recreateScenario.expected}`, { timeout: 420_000 }, async (t) => {
  const row = await runRecreateExperiment(config, { log: (message) => t.diagnostic(message) });
  t.diagnostic(formatChaosTable([row]));
  assert.deepEqual(row.missed, [], formatChaosTable([row]));
  assert.equal(row.inLake, 4_500);
  assert.equal(row.duplicates, 0);
  assert.match(row.notes.join('\n'), /running sink stopped: topic chaos-recreate-\S+\.transactions was deleted and recreated or truncated under this job \(partition \d/);
});
}
