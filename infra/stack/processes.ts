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

/** The pid of our running daemon `name`, or undefined. */
export function runningPid(stackDir: string, name: string): number | undefined {
  const file = pidPath(stackDir, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cwd = workingDirectory(pid);
  if (!alive(pid) || cwd === undefined || !(cwd === stackDir || cwd.startsWith(`${stackDir}/`))) return undefined;
  return pid;
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
    writeFileSync(pidPath(stackDir, spec.name), `${child.pid}\n`);
    child.unref();
  } finally {
    closeSync(log);
  }
  return true;
}

/** SIGTERM, then SIGKILL after `graceMs`. Returns false if the daemon was not running. */
export async function stopDaemon(stackDir: string, name: string, graceMs = 30_000): Promise<boolean> {
  const pid = runningPid(stackDir, name);
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM');
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
