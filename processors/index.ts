import type { ProcessorId } from '../platform/catalog.ts';
import type { ClientContext } from '../platform/context.ts';
import type { StreamJob } from '../core/runtime/index.ts';
import { createProductFilter } from './product-filter/job.ts';
import { createPromoJob } from './promo/job.ts';
import { createSessionScorer } from './session-scorer/job.ts';
import { createFeaturesJob } from './transactions-features/job.ts';

/**
 * The handler of each processor the catalog declares (platform/catalog.ts processorDeclarations),
 * by id. Typed by the declarations: a declared processor without a handler here does not
 * compile. Jobs, ACLs, topics and the dashboard come from the declaration.
 */
export const processorJobs: Record<ProcessorId, (context: ClientContext, options: { instance?: string }) => StreamJob> = {
  transactionsFeatures: createFeaturesJob,
  sessionScorer: createSessionScorer,
  promo: createPromoJob,
  productFilter: createProductFilter,
};
