import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LakestreamError } from '../../core/errors.ts';

export type Progress = (message: string) => void;

/**
 * Installs go into a versioned folder of the cache and are marked complete by a `.complete` file
 * written last, so an interrupted download or build is redone instead of half-used.
 */
export function isInstalled(dir: string): boolean {
  return existsSync(join(dir, '.complete'));
}

export function markInstalled(dir: string): void {
  writeFileSync(join(dir, '.complete'), new Date().toISOString() + '\n');
}

/** Runs a command to completion, reporting a throttled line of its output as progress. */
export function run(
  service: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; progress?: Progress; progressFilter?: RegExp } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let lastReport = 0;
    let lines = 0;
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-20_000);
      for (const line of text.split('\n')) {
        if (!line.trim() || (options.progressFilter && !options.progressFilter.test(line))) continue;
        lines++;
        if (options.progress && Date.now() - lastReport > 2_000) {
          lastReport = Date.now();
          options.progress(`${service}: ${lines} steps … ${line.trim().slice(0, 110)}`);
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (cause) =>
      reject(new LakestreamError('STACK_INSTALL_FAILED', `${service}: cannot run ${command}: ${cause.message}`, { cause, context: { service } })),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else
        reject(
          new LakestreamError('STACK_INSTALL_FAILED', `${service}: \`${command} ${args.join(' ')}\` exited with ${code}:\n${output.slice(-4_000)}`, {
            context: { service },
          }),
        );
    });
  });
}

/** Downloads `url` to `file` (atomically, via a .part file) with a progress line every two seconds. */
export async function download(service: string, url: string, file: string, progress: Progress): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const response = await fetch(url);
  if (!response.ok || !response.body) {
    throw new LakestreamError('STACK_INSTALL_FAILED', `${service}: GET ${url} answered ${response.status}`, { context: { service, url } });
  }
  const total = Number(response.headers.get('content-length') ?? 0);
  let received = 0;
  let lastReport = 0;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
  body.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (Date.now() - lastReport > 2_000) {
      lastReport = Date.now();
      const pct = total ? ` (${Math.floor((received / total) * 100)}%)` : '';
      progress(`${service}: downloaded ${(received / 1e6).toFixed(1)} MB${pct}`);
    }
  });
  const part = `${file}.part`;
  rmSync(part, { force: true });
  await pipeline(body, createWriteStream(part));
  renameSync(part, file);
  progress(`${service}: downloaded ${(received / 1e6).toFixed(1)} MB from ${new URL(url).host}`);
}

/** Whether `command` is on PATH. */
export async function onPath(command: string): Promise<boolean> {
  try {
    await run(command, 'sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}
