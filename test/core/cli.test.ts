import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arg, defineCommand, flag, option, repeated } from '../../core/cli.ts';

const command = defineCommand({
  name: 'demo',
  usage: ['pnpm run demo -- [options]'],
  description: 'Does a thing.',
  positionals: true,
  options: {
    count: option('N', 'records to send', arg.nonNegative().default(10)),
    port: option('P', 'port', arg.port().optional()),
    format: option('F', 'output', arg.oneOf(['table', 'csv'] as const).default('table')),
    from: option('YYYY-MM-DD', 'first day', arg.day().optional()),
    set: repeated('NAME=VALUE', 'a variable', arg.text()),
    quiet: flag('print less', { short: 'q' }),
  },
});

test('cli: values are checked and typed, defaults filled in', () => {
  const parsed = command.parse(['x', '--count', '5', '--set', 'a=1', '--set', 'b=2', '-q'])!;
  assert.deepEqual(parsed, { values: { count: 5, port: undefined, format: 'table', from: undefined, set: ['a=1', 'b=2'], quiet: true }, positionals: ['x'] });
  assert.equal(command.parse([])!.values.count, 10);
});

test('cli: a refused value names the option, the expectation and the raw text', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--count', 'abc'], /^--count must be a non-negative number, got "abc"$/],
    [['--count', ''], /^--count must be a non-negative number, got ""$/],
    [['--port', '65536'], /^--port must be a port number \(0-65535\), got "65536"$/],
    [['--port', '1.5'], /^--port must be a port number/],
    [['--format', 'xml'], /^--format must be one of table, csv, got "xml"$/],
    [['--from', '2026-02-30'], /^--from must be a calendar day as YYYY-MM-DD, got "2026-02-30"$/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => command.parse(argv), (error: Error & { code?: string }) => message.test(error.message) && error.code === 'USAGE', argv.join(' '));
  }
});

test('cli: an unknown option is refused by parseArgs', () => {
  assert.throws(() => command.parse(['--bogus']), /Unknown option '--bogus'/);
});

test('cli: the help lists every option with its placeholder and default, then the environment', () => {
  const { help } = command;
  assert.match(help, /^Usage: pnpm run demo -- \[options\]\n\nDoes a thing\.\n\nOptions:\n/);
  assert.match(help, /--count N\s+records to send \(default 10\)\n/);
  assert.match(help, /--port P\s+port\n/);
  assert.match(help, /--set NAME=VALUE\s+a variable; repeatable\n/);
  assert.match(help, /-q, --quiet\s+print less\n/);
  assert.match(help, /-h, --help\s+this text\n/);
  assert.match(help, /\nEnvironment:\n/);
});

test('cli: a day option accepts calendar days and refuses malformed or impossible ones', () => {
  for (const good of ['2026-11-20', '2024-02-29', '2026-12-31', '2026-01-01']) assert.equal(command.parse(['--from', good])!.values.from, good);
  for (const bad of ['2026-13-01', '2026-02-30', '2025-02-29', '2026-04-31', '2026-00-10', '2026-01-00', '2026-1-5', '2026/01/05', '20260105', 'yesterday', '']) {
    assert.throws(() => command.parse(['--from', bad]), { message: `--from must be a calendar day as YYYY-MM-DD, got ${JSON.stringify(bad)}` }, bad);
  }
});
