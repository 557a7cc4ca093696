import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Catalog } from '../platform/catalog.ts';
import type { Config } from '../core/config.ts';
import { LakestreamError } from '../core/errors.ts';
import { ensurePassword } from './access.ts';
import type { ApplyAction } from './apply.ts';
import { minioAdminBinary } from './stack/minio.ts';

/**
 * Who may do what in the object store, derived from the catalog: the lake's jobs (stream sinks,
 * backfill, compaction, training) read, write and delete under the namespace's table paths,
 * `_lakestream/` roots and models, and nothing else; readers (SQL, DuckDB, dashboards) read and
 * list the same prefixes. Neither may touch another bucket, another namespace, the bucket root,
 * create or delete buckets, or administer the server.
 *
 * Users are server-wide, as on Kafka; each namespace has its own canned policy
 * (`<user>` for the production namespace, `<namespace>.<user>` otherwise) attached to them, so a
 * namespace (a test, a second environment) grants the same users its own prefixes only.
 */

export const S3_JOBS_USER = 'lakestream-jobs';
export const S3_READER_USER = 'lakestream-reader';

interface PolicyStatement {
  Sid: string;
  Effect: 'Allow';
  Action: string[];
  Resource: string[];
  Condition?: Record<string, Record<string, string[]>>;
}

export interface IamPolicy {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export interface S3Grant {
  user: string;
  /** The canned policy of this namespace for the user. */
  policyName: string;
  purpose: string;
  bucket: string;
  /** Key prefixes, each ending in `/`. */
  prefixes: string[];
  policy: IamPolicy;
}

const readObject = ['s3:GetObject'];
const writeObject = ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];

/**
 * The namespace's key prefixes (with a trailing `/`, so `transactions/` does not cover
 * `transactions_old/`): every table path, every object-store root, each sink's state root,
 * without the ones another already covers.
 */
export function lakePrefixes(catalog: Catalog): string[] {
  const roots = [
    ...Object.values(catalog.tables).flatMap((table) => [table.path, table.sinkStateRoot]),
    ...Object.values(catalog.roots),
  ].map((root) => `${root.replace(/\/+$/, '')}/`);
  const unique = [...new Set(roots)].sort();
  return unique.filter((prefix) => !unique.some((other) => other !== prefix && prefix.startsWith(other)));
}

function policyOf(bucket: string, prefixes: string[], write: boolean): IamPolicy {
  const bucketArn = `arn:aws:s3:::${bucket}`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: write ? 'ReadWriteDeleteObjects' : 'ReadObjects',
        Effect: 'Allow',
        Action: write ? [...readObject, ...writeObject] : readObject,
        Resource: prefixes.map((prefix) => `${bucketArn}/${prefix}*`),
      },
      {
        Sid: 'ListPrefixes',
        Effect: 'Allow',
        Action: ['s3:ListBucket'],
        Resource: [bucketArn],
        // `*` also matches nothing: the prefix itself and anything below it
        Condition: { StringLike: { 's3:prefix': prefixes.map((prefix) => `${prefix}*`) } },
      },
      {
        // requests without a prefix: a condition on s3:prefix would refuse them
        Sid: 'BucketLocation',
        Effect: 'Allow',
        Action: write ? ['s3:GetBucketLocation', 's3:ListBucketMultipartUploads'] : ['s3:GetBucketLocation'],
        Resource: [bucketArn],
      },
    ],
  };
}

/** The namespace's S3 users with their policies on `bucket` (LAKE_BUCKET). */
export function s3Grants(catalog: Catalog, bucket: string): S3Grant[] {
  const prefixes = lakePrefixes(catalog);
  const policyName = (user: string) => (catalog.namespace ? `${catalog.namespace}.${user}` : user);
  return [
    {
      user: S3_JOBS_USER,
      policyName: policyName(S3_JOBS_USER),
      purpose: 'stream jobs, backfill, compaction and training: read, write and delete the lake',
      bucket,
      prefixes,
      policy: policyOf(bucket, prefixes, true),
    },
    {
      user: S3_READER_USER,
      policyName: policyName(S3_READER_USER),
      purpose: 'SQL, DuckDB and dashboards: read and list the lake',
      bucket,
      prefixes,
      policy: policyOf(bucket, prefixes, false),
    },
  ];
}

type AdminSettings = Pick<Config, 'S3_ENDPOINT' | 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY' | 'LAKESTREAM_CACHE_DIR'>;

/** Runs minio-admin signed in as root (credentials in its environment, never in argv). */
function minioAdmin(config: AdminSettings, args: string[]): Promise<string[]> {
  const binary = minioAdminBinary(config.LAKESTREAM_CACHE_DIR);
  if (!existsSync(binary)) {
    throw new LakestreamError('S3_ERROR', `${binary} is missing: \`pnpm run stack:up\` builds it`, { context: { path: binary } });
  }
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      args,
      { env: { ...process.env, MINIO_ROOT_USER: config.S3_ACCESS_KEY_ID, MINIO_ROOT_PASSWORD: config.S3_SECRET_ACCESS_KEY }, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) {
          const reason = stderr.trim() || error.message;
          reject(new LakestreamError('S3_ERROR', `minio-admin ${args[0]} failed: ${reason}`, { cause: error, context: { command: args[0] } }));
        } else {
          resolve(stdout.split('\n').filter((line) => line.trim()));
        }
      },
    );
  });
}

const actionOf = (user: string, line: string): ApplyAction => ({ kind: line.startsWith('user ') ? 'user' : 'acl', topic: user, detail: line });

/**
 * Creates or updates the namespace's S3 users (secret from `<secretsDir>/<user>`, made up for the
 * local stack when missing) and their policies on LAKE_BUCKET, as the root user of the config.
 * Idempotent. Returns what minio-admin did, a line each.
 */
export async function applyS3Access(config: AdminSettings & Pick<Config, 'LAKE_BUCKET'>, catalog: Catalog, secretsDir: string): Promise<ApplyAction[]> {
  const actions: ApplyAction[] = [];
  const work = mkdtempSync(join(tmpdir(), 'lakestream-s3-access-'));
  try {
    for (const grant of s3Grants(catalog, config.LAKE_BUCKET)) {
      ensurePassword(secretsDir, grant.user);
      const policyFile = join(work, `${grant.policyName}.json`);
      writeFileSync(policyFile, JSON.stringify(grant.policy, null, 2));
      const lines = await minioAdmin(config, ['apply', config.S3_ENDPOINT, grant.policyName, policyFile, grant.user, join(secretsDir, grant.user)]);
      actions.push(...lines.map((line) => actionOf(grant.user, line)));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return actions;
}

/** Detaches the namespace's policies from the S3 users and deletes them (the users stay). Idempotent. */
export async function revokeS3Access(config: AdminSettings & Pick<Config, 'LAKE_BUCKET'>, catalog: Catalog): Promise<ApplyAction[]> {
  const actions: ApplyAction[] = [];
  for (const grant of s3Grants(catalog, config.LAKE_BUCKET)) {
    const lines = await minioAdmin(config, ['revoke', config.S3_ENDPOINT, grant.policyName, grant.user]);
    actions.push(...lines.map((line) => actionOf(grant.user, line)));
  }
  return actions;
}
