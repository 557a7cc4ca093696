/** The stream-job runtime: what jobs and their handlers import. */
export { createStreamJob } from './job.ts';
export { memoryFigures, runJobsUntilSignal } from './run.ts';
export { topicReset } from './positions.ts';
export type { BatchContext, CommitMode, PartitionBatch, StreamHandler, StreamJob, StreamJobControls, StreamJobOptions, StreamJobStats, StreamRecord } from './types.ts';
