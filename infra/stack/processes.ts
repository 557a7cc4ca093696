import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../core/retry.ts';

/**
 * Background servers of the local stack. Each one has a pid file under `<stackDir>/pids` and a log
 * under `<stackDir>/logs`, and runs inside the stack directory. A pid counts as ours only while
 * that process's working directory is still inside the stack directory (command lines are no
 * proof: Redis rewrites its own), so `stack:down` never signals a recycled pid or a server
 * that somebody else started.
 */
export interface DaemonSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A directory outside the stack's where the daemon moves itself (PostgreSQL run as its own user chdirs to its data). */
  home?: string;
  /** How it is asked to stop (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
}

export const logPath = (stackDir: string, name: string) => join(stackDir, 'logs', `${name}.log`);
const pidPath = (stackDir: string, name: string) => join(stackDir, 'pids', `${name}.pid`);

function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z';
  } catch {
    return false;
  }
}

function workingDirectory(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined;
  }
}

/** A pid file: the pid on its first line, then `home=` and `stop=` when the daemon declared them. */
function readPidFile(stackDir: string, name: string): { pid: number; home?: string; stopSignal: NodeJS.Signals } | undefined {
  const file = pidPath(stackDir, name);
  if (!existsSync(file)) return undefined;
  const [first, ...rest] = readFileSync(file, 'utf8').trim().split('\n');
  const pid = Number(first);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const fields = Object.fromEntries(rest.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
  return { pid, home: fields.home, stopSignal: (fields.stop as NodeJS.Signals | undefined) ?? 'SIGTERM' };
}

const within = (dir: string, root: string) => dir === root || dir.startsWith(`${root}/`);

/** The pid of our running daemon `name`, or undefined. */
export function runningPid(stackDir: string, name: string): number | undefined {
  const entry = readPidFile(stackDir, name);
  if (!entry) return undefined;
  const cwd = workingDirectory(entry.pid);
  if (!alive(entry.pid) || cwd === undefined || !(within(cwd, stackDir) || (entry.home !== undefined && within(cwd, entry.home)))) return undefined;
  return entry.pid;
}

/** Starts `spec` detached unless it already runs; returns whether it was started now. */
export function startDaemon(stackDir: string, spec: DaemonSpec): boolean {
  if (runningPid(stackDir, spec.name) !== undefined) return false;
  mkdirSync(join(stackDir, 'logs'), { recursive: true });
  mkdirSync(join(stackDir, 'pids'), { recursive: true });
  const log = openSync(logPath(stackDir, spec.name), 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd ?? stackDir,
      env: { ...process.env, ...spec.env },
      detached: true,
      stdio: ['ignore', log, log],
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.command}`);
    const extra = [...(spec.home ? [`home=${spec.home}`] : []), ...(spec.stopSignal ? [`stop=${spec.stopSignal}`] : [])];
    writeFileSync(pidPath(stackDir, spec.name), [child.pid, ...extra].join('\n') + '\n');
    child.unref();
  } finally {
    closeSync(log);
  }
  return true;
}

/** Its stop signal (SIGTERM unless declared), then SIGKILL after `graceMs`. Returns false if the daemon was not running. */
export async function stopDaemon(stackDir: string, name: string, graceMs = 30_000): Promise<boolean> {
  const pid = runningPid(stackDir, name);
  if (pid !== undefined) {
    process.kill(pid, readPidFile(stackDir, name)!.stopSignal);
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await sleep(200);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(pidPath(stackDir, name), { force: true });
  return pid !== undefined;
}

/** Resident memory of a process and its children in KiB, from /proc. */
export function residentKib(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}
