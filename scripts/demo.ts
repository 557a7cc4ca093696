import { spawnSync } from 'node:child_process';
import { repoRoot } from '../core/config.ts';

/**
 * The end-to-end demo behind README's first command: the local stack, the topics and schemas,
 * then each stage of the platform that exists so far, as a user would run it.
 */
const steps: Array<{ title: string; args: string[] }> = [
  { title: 'start the local stack (first run downloads and builds the servers)', args: ['run', 'stack:up'] },
  { title: 'create topics and register schemas', args: ['run', 'infra:apply'] },
  { title: 'show the stack', args: ['run', 'stack:status'] },
];

for (const [index, step] of steps.entries()) {
  console.log(`\n=== ${index + 1}/${steps.length} ${step.title}: pnpm ${step.args.join(' ')}`);
  const result = spawnSync('pnpm', ['--silent', ...step.args], { cwd: repoRoot, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`demo: step ${index + 1} failed (exit ${result.status})`);
    process.exit(result.status ?? 1);
  }
}
console.log('\ndemo: done. `pnpm run stack:down` stops the stack.');
