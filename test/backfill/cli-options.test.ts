import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';

// Validation comes before any configuration or connection, so these need no servers.
const cli = (file: string, args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'backfill', file), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });

test('pnpm run backfill refuses an invalid --from or --to, or --from after --to, with one line naming it', { timeout: 120_000 }, () => {
  const cases: Array<[string[], string]> = [
    [['--from', '2026-13-01'], 'backfill: --from must be a calendar day as YYYY-MM-DD, got "2026-13-01"'],
    [['--from', '2026-11-01', '--to', '2026-02-30'], 'backfill: --to must be a calendar day as YYYY-MM-DD, got "2026-02-30"'],
    [['--to', '20.11.2026'], 'backfill: --to must be a calendar day as YYYY-MM-DD, got "20.11.2026"'],
    [['--from', '2026-11-20', '--to', '2026-11-01', '--dry-run'], 'backfill: --from 2026-11-20 is after --to 2026-11-01'],
  ];
  for (const [args, message] of cases) {
    const result = cli('cli.ts', args);
    assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stderr.trim(), message);
    assert.equal(result.stdout, '');
  }
});

test('pnpm run compact refuses an invalid --dt or --hour with one line naming it', { timeout: 120_000 }, () => {
  const cases: Array<[string[], string]> = [
    [['--table', 'transactions', '--dt', '2026-02-30'], 'compact: --dt must be a calendar day as YYYY-MM-DD, got "2026-02-30"'],
    [['--table', 'transactions', '--dt', '2026-13-01'], 'compact: --dt must be a calendar day as YYYY-MM-DD, got "2026-13-01"'],
    [['--table', 'transactions', '--dt', '2026-11-20', '--hour', '24'], 'compact: --hour must be two digits 00-23, got "24"'],
  ];
  for (const [args, message] of cases) {
    const result = cli('compact-cli.ts', args);
    assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stderr.trim(), message);
  }
});
