import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createGuardedServer, requestPath } from '../core/http.ts';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Collector, Snapshot } from './collect.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** Chart.js's own browser build, served from node_modules: nothing is bundled or copied. */
const chartJs = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');

const assets: Record<string, { file: string; type: string }> = {
  '/': { file: join(here, 'public', 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: join(here, 'public', 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: join(here, 'public', 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/chart.umd.min.js': { file: chartJs, type: 'text/javascript; charset=utf-8' },
};

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

/**
 * The dashboard's HTTP server: the page and its assets, `/api/snapshot` (one snapshot as JSON),
 * and `/events`, a server-sent event stream with a new snapshot every `intervalMs` while anyone
 * watches. One collection feeds every open page, so ten tabs cost what one does.
 */
export async function startDashboard(collector: Collector, options: { port: number; host: string; intervalMs: number; log: Logger }): Promise<Dashboard> {
  const watchers = new Set<ServerResponse>();
  let latest: Snapshot | undefined;
  let collecting: Promise<Snapshot> | undefined;
  const collect = () =>
    (collecting ??= collector
      .snapshot()
      .then((snapshot) => (latest = snapshot))
      .finally(() => (collecting = undefined)));

  const timer = setInterval(() => {
    if (!watchers.size) return;
    collect()
      .then((snapshot) => {
        const event = `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`;
        for (const watcher of watchers) watcher.write(event);
      })
      .catch((error: unknown) => options.log.warn('collecting a snapshot failed', { error: errorMessage(error) }));
  }, options.intervalMs);

  const server = createGuardedServer('dashboard', options.log, (request, response) => {
    const path = requestPath(request.url);
    const asset = path !== undefined && Object.hasOwn(assets, path) ? assets[path] : undefined;
    if (path === undefined) {
      request.resume();
      response.writeHead(400, { 'content-type': 'text/plain' }).end('the request target must be a path starting with /\n');
    } else if (request.method !== 'GET') {
      request.resume();
      response.writeHead(405, { allow: 'GET' }).end();
    } else if (asset) {
      response.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache' }).end(readFileSync(asset.file));
    } else if (path === '/api/snapshot') {
      collect()
        .then((snapshot) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(snapshot)))
        .catch((error: unknown) => response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: errorMessage(error) })));
    } else if (path === '/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // the last snapshot at once, so a page never starts blank for a whole interval
      response.write(`retry: 2000\n\n`);
      if (latest) response.write(`event: snapshot\ndata: ${JSON.stringify(latest)}\n\n`);
      else void collect().then((snapshot) => response.write(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`), () => {});
      watchers.add(response);
      request.on('close', () => watchers.delete(response));
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}/`;
  return {
    url,
    async close() {
      clearInterval(timer);
      for (const watcher of watchers) watcher.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await collecting?.catch(() => {});
      await collector.close();
    },
  };
}
