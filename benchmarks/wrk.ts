import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LakestreamError } from '../core/errors.ts';

export interface WrkFigures {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

/** wrk in a child process: a server under test may serve from this process's event loop meanwhile. */
export async function runWrk(url: string, seconds: number, connections: number, script?: string, threads = 2): Promise<WrkFigures> {
  const args = [`-t${Math.min(threads, connections)}`, `-c${connections}`, `-d${seconds}s`, '--latency', ...(script ? ['-s', script] : []), url];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk));
    child.once('error', (error) => reject(new LakestreamError('USAGE', `wrk could not run (${error.message}): bash scripts/bootstrap.sh installs it`)));
    child.once('close', () => resolve(text));
  });
  const ms = (label: string) => {
    const match = new RegExp(`^\\s+${label}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    if (!match) return Number.NaN;
    return Number(match[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[match[2]!]!;
  };
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN),
    p50Ms: ms('50%'),
    p99Ms: ms('99%'),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    errors: [...out.matchAll(/(?:connect|read|write|timeout) (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0),
  };
}

/** A wrk script in `dir` that POSTs `body` as JSON; returns its path. */
export function wrkPostScript(dir: string, name: string, body: unknown): string {
  const file = join(dir, `${name}.lua`);
  writeFileSync(file, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ${JSON.stringify(JSON.stringify(body))}\n`);
  return file;
}
