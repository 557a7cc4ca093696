import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../core/config.ts';
import { packageScriptCommand, startPipeline } from '../../scripts/pipeline-process.ts';
import { onCleanup, waitFor } from '../helpers.ts';
import { pipelineJobs } from '../../pipeline/jobs.ts';
import { setupPipeline } from '../pipeline/fixture.ts';

test('the demo and the benchmarks run the jobs with the command of `pnpm run pipeline` / `pnpm run job`', () => {
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const name of ['pipeline', 'job']) {
    const { env, args } = packageScriptCommand(name);
    assert.equal([...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'node', ...args].join(' '), scripts[name]);
    assert.ok(args.includes('pipeline/cli.ts'), `${name} runs the pipeline CLI`);
  }
  assert.throws(() => packageScriptCommand('typecheck'), /is not "\[VAR=value …\] node …"/);
});

/** Pids of live processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(text)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

test('the demo pipeline step stops its pipeline for good: no process left, pipe released, clean exit', { timeout: 90_000 }, async (t) => {
  const { namespace, context } = await setupPipeline(t, 'demo-stop');
  const jobCount = Object.keys(pipelineJobs(context)).length;
  const pipeline = startPipeline(['--namespace', namespace, '--flush-interval-ms', '2000']);
  onCleanup(t, () => pipeline.stop(5_000));
  await waitFor(
    `the ${jobCount} pipeline jobs to start`,
    async () => {
      if (pipeline.exitCode() !== undefined) throw new Error(`the pipeline exited (${pipeline.exitCode()}): ${pipeline.log().slice(-2_000)}`);
      return (pipeline.log().match(/"msg":"job started"/g) ?? []).length === jobCount ? true : undefined;
    },
    45_000,
    250,
  );
  assert.deepEqual(processesMentioning(namespace), [pipeline.pid], 'the pid we signal is the one running the jobs');

  const started = Date.now();
  const code = await pipeline.stop();
  assert.equal(code, 0, pipeline.log().slice(-2_000));
  assert.ok(Date.now() - started < 35_000, `stopped in ${Date.now() - started} ms`);
  assert.throws(() => process.kill(pipeline.pid, 0), (error: NodeJS.ErrnoException) => error.code === 'ESRCH');
  assert.deepEqual(processesMentioning(namespace), [], 'nothing of this pipeline is left running');
  assert.match(pipeline.log(), /"msg":"stopped"/);
});
