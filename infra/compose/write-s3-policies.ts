import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../core/config.ts';
import { catalog } from '../../platform/catalog.ts';
import { s3Grants } from '../s3-access.ts';

/**
 * Writes the S3 policies of the lake's users (infra/s3-access.ts) for docker-compose.secure.yml,
 * whose `minio-users` service creates the users with MinIO's own client. A test keeps these files
 * equal to what the catalog derives: `node --import tsx infra/compose/write-s3-policies.ts`
 * after a change of the lake's prefixes.
 */
export const composePoliciesDir = join(repoRoot, 'infra', 'compose', 's3-policies');

export function composePolicies(): Record<string, string> {
  return Object.fromEntries(s3Grants(catalog(''), 'lake').map((grant) => [`${grant.user}.json`, `${JSON.stringify(grant.policy, null, 2)}\n`]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  mkdirSync(composePoliciesDir, { recursive: true });
  for (const [file, text] of Object.entries(composePolicies())) writeFileSync(join(composePoliciesDir, file), text);
}
