import { execFile, spawn } from 'node:child_process';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { Config } from '../../core/config.ts';
import { repoRoot } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';
import { fromCallback } from '../../core/async.ts';
import { librdkafkaBase, type KafkaConnection } from '../../core/kafka.ts';
import { retry } from '../../core/retry.ts';
import { brokerAddresses, java } from '../stack/kafka.ts';
import { portOf } from '../stack/context.ts';
import { runningPid } from '../stack/processes.ts';

/**
 * Faults on the local stack's servers, by their pid files, and the stack's own command to heal
 * them: what an operator would do by hand, done by a script so that a scenario can count records.
 */
export interface StackFaults {
  /** kill -9 a daemon of the stack (`kafka-2`, `minio`, `redis`); returns its pid. */
  kill(daemon: string): number;
  /** SIGSTOP a daemon: its connections stay open and nothing on them is answered, as in a long GC pause. */
  pause(daemon: string): void;
  /** SIGCONT a paused daemon (heal does it for every one still paused). */
  resume(daemon: string): void;
  /** `pnpm run stack:up`, or with `nodes` only those Kafka nodes (`--node N`). */
  heal(nodes?: number[]): Promise<void>;
  /** The node id of the active KRaft controller (the metadata quorum's leader). */
  activeController(): Promise<number>;
  /** The Kafka node ids of the stack. */
  nodes: number[];
}

export function stackFaults(config: Config): StackFaults {
  const stackDir = config.LAKESTREAM_STACK_DIR;
  const brokers = config.KAFKA_BROKERS.length >= 3 ? 3 : 1;
  const controllers = brokerAddresses({ config, brokers })
    .map((address) => `${address.slice(0, address.lastIndexOf(':'))}:${portOf(address) + 1}`)
    .join(',');
  const pidOf = (daemon: string) => {
    const pid = runningPid(stackDir, daemon);
    if (pid === undefined) throw new LakestreamError('USAGE', `${daemon} of the stack in ${stackDir} is not running`);
    return pid;
  };
  const paused = new Map<string, number>();
  return {
    nodes: Array.from({ length: brokers }, (_, i) => i + 1),
    kill(daemon) {
      const pid = pidOf(daemon);
      process.kill(pid, 'SIGKILL');
      return pid;
    },
    pause(daemon) {
      const pid = pidOf(daemon);
      process.kill(pid, 'SIGSTOP');
      paused.set(daemon, pid);
    },
    resume(daemon) {
      const pid = paused.get(daemon) ?? pidOf(daemon);
      process.kill(pid, 'SIGCONT');
      paused.delete(daemon);
    },
    async heal(nodes = []) {
      for (const [daemon, pid] of paused) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // it died meanwhile: stack:up below starts it again
        }
        paused.delete(daemon);
      }
      const args = ['--import', 'tsx', join(repoRoot, 'infra', 'stack', 'cli.ts'), 'up', ...nodes.flatMap((node) => ['--node', String(node)])];
      const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      if (code !== 0) throw new LakestreamError('STACK_START_TIMEOUT', `stack:up ${nodes.length ? `--node ${nodes.join(',')} ` : ''}failed (exit ${code}): ${output.slice(-2_000)}`);
    },
    async activeController() {
      const tool = java({ cacheDir: config.LAKESTREAM_CACHE_DIR, stackDir }, 'org.apache.kafka.tools.MetadataQuorumCommand', ['--bootstrap-controller', controllers, 'describe', '--status'], ['-Xmx128m']);
      // asynchronous: the scenario's producer shares this event loop and must keep its rate while a JVM starts
      const result = await promisify(execFile)(tool.command, tool.args, { encoding: 'utf8', timeout: 60_000 }).catch((error: { stdout?: string; stderr?: string; message: string }) => ({
        stdout: error.stdout ?? '',
        stderr: error.stderr || error.message,
      }));
      const leader = /LeaderId:\s+(\d+)/.exec(result.stdout);
      if (!leader) throw new LakestreamError('KAFKA_ERROR', `could not read the metadata quorum's leader: ${(result.stderr || result.stdout).slice(-1_000)}`);
      return Number(leader[1]);
    },
  };
}

/**
 * Leaders of a topic's partitions (-1: none), from librdkafka's metadata: it asks any broker
 * that answers, where a client bootstrapped on the broker just killed would give up.
 */
export async function partitionLeaders(connection: KafkaConnection, topic: string): Promise<number[]> {
  const client = new kafkaJavascript.Producer({ ...librdkafkaBase(connection), 'client.id': 'lakestream-chaos-metadata' }, {});
  await fromCallback<unknown>((cb) => client.connect({ timeout: 10_000 }, cb));
  try {
    const metadata = await retry(() => fromCallback<kafkaJavascript.Metadata>((cb) => client.getMetadata({ topic, timeout: 5_000 }, cb)), { retries: 5, initialDelayMs: 500, shouldRetry: () => true });
    const partitions = metadata.topics.find((t) => t.name === topic)?.partitions ?? [];
    return [...partitions].sort((a, b) => a.id - b.id).map((partition) => partition.leader);
  } finally {
    await new Promise<void>((resolve) => client.disconnect(() => resolve()));
  }
}
