import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { LakestreamError } from '../../core/errors.ts';
import type { StackService } from './context.ts';
import { onPath, run } from './install.ts';
import { startDaemon } from './processes.ts';

/** Redis comes from Debian's redis-server package: installed here when missing and we are root. */
export const redis: StackService = {
  name: 'redis',

  async install(ctx) {
    if (await onPath('redis-server')) return;
    if (process.getuid?.() !== 0 || !(await onPath('apt-get'))) {
      throw new LakestreamError('STACK_INSTALL_FAILED', 'redis-server is not installed; install it with your package manager (Debian: apt-get install redis-server)', {
        context: { service: 'redis' },
      });
    }
    ctx.progress('redis: installing Debian package redis-server');
    await run('redis', 'apt-get', ['install', '-y', '-q', 'redis-server'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, progress: ctx.progress });
  },

  async start(ctx) {
    const url = new URL(ctx.config.REDIS_URL);
    const dir = join(ctx.stackDir, 'redis');
    mkdirSync(dir, { recursive: true });
    startDaemon(ctx.stackDir, {
      name: 'redis',
      command: 'redis-server',
      args: [
        '--bind', url.hostname || '127.0.0.1',
        '--port', url.port || '6379',
        '--dir', dir,
        '--daemonize', 'no',
        '--save', '',
        '--appendonly', 'yes',
        '--appendfsync', 'everysec',
        '--maxmemory', '512mb',
        '--hz', '5',
      ],
    });
  },

  async check(ctx) {
    const url = new URL(ctx.config.REDIS_URL);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = createConnection({ host: url.hostname, port: Number(url.port || 6379) });
      socket.setTimeout(2_000, () => socket.destroy(new Error('timeout')));
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (data) => {
        resolve(data.toString());
        socket.end();
      });
      socket.on('error', reject);
    });
    if (!reply.startsWith('+PONG')) throw new Error(`PING answered ${reply.trim()}`);
  },

  startTimeoutMs: 20_000,
  daemons: () => ['redis'],
  endpoint: (ctx) => ctx.config.REDIS_URL,
};
