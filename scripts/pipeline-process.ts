import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot } from '../core/config.ts';

/**
 * What `pnpm run pipeline` runs (package.json), minus the `node`: spawned directly, because pnpm
 * does not forward SIGTERM to its child, which would be left running with our pipes open.
 */
export const PIPELINE_NODE_ARGS = ['--max-old-space-size=768', '--import', 'tsx', 'pipeline/cli.ts', '--all'];

export interface PipelineProcess {
  readonly pid: number;
  /** The last 20,000 characters it printed on stderr (its logs). */
  log(): string;
  /** The exit code once it has exited by itself or been stopped, else undefined. */
  exitCode(): number | null | undefined;
  /**
   * SIGTERM (the pipeline flushes, commits and exits), SIGKILL after `timeoutMs`; resolves once
   * the process has exited and its output pipe is released, with its exit code (null if killed).
   */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** Starts every pipeline job in one child process, with `args` added (--namespace, --flush-…). */
export function startPipeline(args: string[] = [], options: { env?: NodeJS.ProcessEnv } = {}): PipelineProcess {
  const child: ChildProcess = spawn(process.execPath, [...PIPELINE_NODE_ARGS, ...args], {
    cwd: repoRoot,
    env: options.env ?? process.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start the pipeline: ${process.execPath} ${PIPELINE_NODE_ARGS.join(' ')}`);
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
  // 'close', not 'exit': only then has every holder of the pipe let go of it.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const state = () => (child.exitCode !== null || child.signalCode !== null ? child.exitCode : undefined);
  return {
    pid: child.pid,
    log: () => log,
    exitCode: state,
    async stop(timeoutMs = 45_000) {
      if (state() === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        await new Promise<void>((resolve) => (state() === undefined ? child.once('exit', () => resolve()) : resolve()));
        clearTimeout(timer);
      }
      // A grandchild still holding the pipe would keep the caller alive after the pipeline is
      // gone: wait for it briefly, then let go of our end.
      const released = await Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, 5_000, false).unref())]);
      if (!released) child.stderr!.destroy();
      return child.exitCode;
    },
  };
}
