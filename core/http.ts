import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage } from './errors.ts';
import type { Logger } from './log.ts';

/**
 * The path of a request target in origin form (`/a/b?q`), still percent-encoded, or undefined
 * for anything else (`*`, `http://host/x`, an empty target). Not `new URL(target, base)`: it
 * throws on `//` and reads `//host/x` as another host.
 */
export function requestPath(target: string | undefined): string | undefined {
  if (!target?.startsWith('/')) return undefined;
  return target.split(/[?#]/, 1)[0]!;
}

/** A percent-encoded path segment decoded, or undefined where the encoding is not valid UTF-8 (`%E0`, `%`). */
export function decodePathSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * An HTTP server whose request handler cannot take the process down: a throw or a rejected
 * promise of one request is logged and answered with 500 (or the connection is closed if the
 * answer had begun), and the server goes on with the next. Node answers what it cannot parse as
 * HTTP (bad methods, headers, framing) with 400 itself.
 */
export function createGuardedServer(name: string, log: Logger, handle: (request: IncomingMessage, response: ServerResponse) => unknown): Server {
  const failed = (request: IncomingMessage, response: ServerResponse, error: unknown) => {
    log.error(`${name}: a request failed`, { method: request.method, url: request.url?.slice(0, 200), error: errorMessage(error) });
    if (response.headersSent) response.destroy();
    else response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'internal error' }));
  };
  return createServer((request, response) => {
    try {
      const pending = handle(request, response);
      if (pending instanceof Promise) pending.catch((error: unknown) => failed(request, response, error));
    } catch (error) {
      failed(request, response, error);
    }
  });
}

/** An answer other than 200, with the body fields and headers it carries besides `error`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A request's JSON body: 415 unless it says JSON, 413 past `maxBodyBytes` (declared or read), 400 if it does not parse. */
export async function readJsonBody(request: IncomingMessage, maxBodyBytes: number): Promise<unknown> {
  if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) throw new HttpError(415, 'the body must be JSON (Content-Type: application/json)');
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > maxBodyBytes) throw new HttpError(413, `the body is ${declared} bytes; the limit is ${maxBodyBytes}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new HttpError(413, `the body is over the limit of ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `the body is not valid JSON: ${errorMessage(error)}`);
  }
}

/**
 * The grant of the API key a request presents (`Authorization: Bearer <key>` or `X-API-Key`),
 * 401 without a known one. Keys are kept and compared as SHA-256 digests, in constant time.
 */
export function apiKeyCheck<G>(keys: Map<string, G>): (request: IncomingMessage) => G {
  const digestOf = (text: string) => createHash('sha256').update(text).digest();
  const known = [...keys].map(([key, grant]) => ({ digest: digestOf(key), grant }));
  return (request) => {
    const presented = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? (request.headers['x-api-key'] as string | undefined);
    if (!presented) throw new HttpError(401, 'an API key is required (Authorization: Bearer <key>, or X-API-Key)', {}, { 'www-authenticate': 'Bearer' });
    const digest = digestOf(presented);
    const match = known.find((candidate) => timingSafeEqual(candidate.digest, digest));
    if (!match) throw new HttpError(401, 'unknown API key', {}, { 'www-authenticate': 'Bearer' });
    return match.grant;
  };
}
