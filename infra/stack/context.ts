import type { Config } from '../../core/config.ts';
import type { Progress } from './install.ts';

export interface StackContext {
  config: Config;
  /** 3 combined broker+controller nodes by default; 1 for light runs. */
  brokers: number;
  /** Start only these Kafka nodes (1-based), leaving the other servers as they are: `stack:up -- --node N`. */
  nodes?: number[];
  /** Kafka without the open PLAINTEXT listener: every client signs in (`stack:up -- --secure`). */
  secure: boolean;
  stackDir: string;
  cacheDir: string;
  progress: Progress;
}

/**
 * One server of the local stack. `install` fills the cache (idempotent), `start` launches the
 * server unless it already runs, `check` throws unless it answers like a healthy server.
 */
export interface StackService {
  name: string;
  install(ctx: StackContext): Promise<void>;
  start(ctx: StackContext): Promise<void>;
  check(ctx: StackContext): Promise<void>;
  /** One-time setup once the server is healthy (for example creating the lake bucket). */
  ready?(ctx: StackContext): Promise<void>;
  /** How long a cold start may take before `stack:up` gives up on this service. */
  startTimeoutMs: number;
  /** Names of the daemons (pid files) this service runs. */
  daemons(ctx: StackContext): string[];
  endpoint(ctx: StackContext): string;
  /** Removes data it keeps outside the stack directory (`stack:down -- --wipe`). */
  wipe?(ctx: StackContext): void;
}

export function portOf(hostPort: string): number {
  const port = Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
  if (!Number.isInteger(port)) throw new Error(`no port in ${hostPort}`);
  return port;
}
