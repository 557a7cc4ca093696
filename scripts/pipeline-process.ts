import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../core/config.ts';

/**
 * The environment and node arguments of a package.json script of the form
 * `[VAR=value …] node <args>`, so a process can be spawned exactly as `pnpm run <name>` would
 * run it, but directly: pnpm does not forward SIGTERM to its child, which would be left running
 * with our pipes open. package.json stays the one place the jobs' heap cap and allocator
 * settings are written.
 */
export function packageScriptCommand(name: string): { env: Record<string, string>; args: string[] } {
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const words = (scripts[name] ?? '').split(/\s+/).filter(Boolean);
  const env: Record<string, string> = {};
  while (words[0] && /^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
    const word = words.shift()!;
    env[word.slice(0, word.indexOf('='))] = word.slice(word.indexOf('=') + 1);
  }
  if (words.shift() !== 'node') throw new Error(`package.json script ${name} is not "[VAR=value …] node …": ${JSON.stringify(scripts[name])}`);
  return { env, args: words };
}

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
  /** SIGHUP: every job reloads what it loaded at start (the scorer, its model). */
  reload(): void;
}

/** Starts every pipeline job in one child process, with `args` added (--namespace, --flush-…). */
export function startPipeline(args: string[] = [], options: { env?: NodeJS.ProcessEnv } = {}): PipelineProcess {
  const command = packageScriptCommand('pipeline');
  const child: ChildProcess = spawn(process.execPath, [...command.args, ...args], {
    cwd: repoRoot,
    env: { ...(options.env ?? process.env), ...command.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start the pipeline: ${process.execPath} ${command.args.join(' ')}`);
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
  // 'close', not 'exit': only then has every holder of the pipe let go of it.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const state = () => (child.exitCode !== null || child.signalCode !== null ? child.exitCode : undefined);
  return {
    pid: child.pid,
    log: () => log,
    exitCode: state,
    reload: () => void child.kill('SIGHUP'),
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

export interface JobProcess {
  readonly child: ChildProcess;
  /** The last 2,000,000 characters it printed (its logs): a chaos run keeps the whole of them. */
  output(): string;
  kill9(): Promise<void>;
  /** SIGTERM (flush, commit, exit); resolves with the exit code, or null if it had to be killed after `graceMs` (default 60 s). */
  terminate(graceMs?: number): Promise<number | null>;
}

/**
 * Runs some jobs as `pnpm run job -- <jobs> <args>` would, in a process of their own that a
 * tool can kill, with its output kept: for tools that break or measure jobs (chaos, benchmarks).
 */
export function startJobProcess(jobs: string[], args: string[], env: NodeJS.ProcessEnv = {}): JobProcess {
  const command = packageScriptCommand('job');
  const child = spawn(process.execPath, [...command.args, ...jobs, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...command.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-2_000_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    output: () => output,
    async kill9() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    async terminate(graceMs = 60_000) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      // a job that hangs while stopping must not hang its caller: past the grace it is killed
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
