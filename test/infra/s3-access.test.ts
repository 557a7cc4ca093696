import assert from 'node:assert/strict';
import { createObjectStore } from '../../core/object-store.ts';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { catalog } from '../../platform/catalog.ts';
import { createS3 } from '../../core/s3.ts';
import { applyS3Access, lakePrefixes, revokeS3Access, S3_JOBS_USER, S3_READER_USER, s3Grants } from '../../infra/s3-access.ts';
import { cleanupPrefix, config, onCleanup, testS3, uniqueName } from '../helpers.ts';

/** Resolves to the S3 error's name (`AccessDenied`, `NotFound`, …) or fails if the call succeeded. */
async function refusal(call: Promise<unknown>, what: string): Promise<string> {
  try {
    await call;
  } catch (error) {
    const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    return `${e.name} ${e.$metadata?.httpStatusCode}`;
  }
  assert.fail(`${what} succeeded`);
}

const denied = 'AccessDenied 403';

async function exists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (error) {
    if ((error as { name?: string }).name === 'NotFound') return false;
    throw error;
  }
}

function clientAs(t: Parameters<typeof testS3>[0], user: string, secretsDir: string): S3Client {
  const s3 = createS3({ ...config, S3_ACCESS_KEY_ID: user, S3_SECRET_ACCESS_KEY: readFileSync(join(secretsDir, user), 'utf8').trim() });
  onCleanup(t, () => s3.destroy());
  return s3;
}

test('s3Grants: the namespace prefixes of the catalog in the lake bucket, writes for the jobs only', () => {
  const ns = uniqueName('s3grants');
  const names = catalog(ns);
  const prefixes = lakePrefixes(names);
  for (const table of Object.values(names.tables)) assert.ok(prefixes.includes(`${table.path}/`), table.path);
  for (const root of Object.values(names.roots)) assert.ok(prefixes.includes(`${root}/`), root);
  assert.ok(prefixes.every((prefix) => prefix.startsWith(`${ns}/`) && prefix.endsWith('/')));
  // sink state roots lie under _lakestream/sinks/: covered, not repeated
  assert.ok(!prefixes.some((prefix) => prefix !== `${names.roots.sinkState}/` && prefix.startsWith(`${names.roots.sinkState}/`)));

  const [jobs, reader] = s3Grants(names, 'lake');
  assert.equal(jobs!.user, S3_JOBS_USER);
  assert.equal(jobs!.policyName, `${ns}.${S3_JOBS_USER}`);
  assert.equal(reader!.user, S3_READER_USER);
  assert.equal(s3Grants(catalog(''), 'lake')[0]!.policyName, S3_JOBS_USER, 'production policy is named after the user');
  for (const grant of [jobs!, reader!]) {
    const actions = grant.policy.Statement.flatMap((s) => s.Action);
    const resources = grant.policy.Statement.flatMap((s) => s.Resource);
    assert.ok(!actions.some((action) => action.includes('*') || ['s3:CreateBucket', 's3:DeleteBucket'].includes(action) || !action.startsWith('s3:')), actions.join());
    assert.ok(resources.every((resource) => resource === 'arn:aws:s3:::lake' || prefixes.some((p) => resource === `arn:aws:s3:::lake/${p}*`)), resources.join());
  }
  const objectActions = (grant: typeof jobs) => grant!.policy.Statement.filter((s) => s.Resource.some((r) => r.includes('/'))).flatMap((s) => s.Action);
  assert.deepEqual(objectActions(reader), ['s3:GetObject']);
  assert.deepEqual(objectActions(jobs).sort(), ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject']);
});

test('lakestream-jobs writes its namespace only, lakestream-reader only reads, on the real MinIO', async (t) => {
  const ns = uniqueName('s3access');
  const other = uniqueName('s3other');
  const names = catalog(ns);
  const bucket = config.LAKE_BUCKET;
  const root = testS3(t);
  // the stack's own secrets: a made-up directory would give the shared users new secrets
  const secretsDir = join(config.LAKESTREAM_STACK_DIR, 'secrets', 's3-users');
  cleanupPrefix(t, root, `${ns}/`);
  cleanupPrefix(t, root, `${other}/`);
  const strayKey = `${ns}-stray.txt`;
  onCleanup(t, () => root.send(new DeleteObjectCommand({ Bucket: bucket, Key: strayKey })));

  // another bucket, made by root, that the jobs must not write to
  const otherBucket = uniqueName('s3bucket');
  await root.send(new CreateBucketCommand({ Bucket: otherBucket }));
  onCleanup(t, async () => {
    await root.send(new DeleteObjectCommand({ Bucket: otherBucket, Key: 'x.txt' }));
    await root.send(new DeleteBucketCommand({ Bucket: otherBucket }));
  });

  onCleanup(t, () => revokeS3Access(config, names));
  const first = await applyS3Access(config, names, secretsDir);
  for (const user of [S3_JOBS_USER, S3_READER_USER]) {
    const lines = first.filter((a) => a.topic === user).map((a) => a.detail);
    assert.ok(lines.includes(`policy ${ns}.${user}: created`), lines.join('\n'));
    assert.ok(lines.includes(`policy ${ns}.${user}: attached to ${user}`), lines.join('\n'));
    assert.equal(statSync(join(secretsDir, user)).mode & 0o777, 0o600, `${user} secret file is owner-only`);
  }
  const second = await applyS3Access(config, names, secretsDir);
  for (const user of [S3_JOBS_USER, S3_READER_USER]) {
    const lines = second.filter((a) => a.topic === user).map((a) => a.detail);
    assert.deepEqual(lines, [`policy ${ns}.${user}: updated`, `user ${user}: updated (secret from ${join(secretsDir, user)})`, `policy ${ns}.${user}: already attached to ${user}`]);
  }

  const jobs = clientAs(t, S3_JOBS_USER, secretsDir);
  const reader = clientAs(t, S3_READER_USER, secretsDir);

  // the jobs' own prefixes: put, get, list, delete
  const tableKey = `${names.tables.transactions.path}/dt=2026-01-01/hour=00/part-0.parquet`;
  const stateKey = `${names.tables.transactions.sinkStateRoot}/partition=0.json`;
  for (const key of [tableKey, stateKey]) {
    await jobs.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));
    const got = await jobs.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(await got.Body!.transformToString(), `body of ${key}`);
  }
  const listed = await jobs.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${names.tables.transactions.path}/` }));
  assert.deepEqual(listed.Contents?.map((o) => o.Key), [tableKey]);
  await jobs.send(new GetBucketLocationCommand({ Bucket: bucket }));

  // the reader: get and list what the jobs wrote, write nothing
  const read = await reader.send(new GetObjectCommand({ Bucket: bucket, Key: stateKey }));
  assert.equal(await read.Body!.transformToString(), `body of ${stateKey}`);
  const readerListed = await reader.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${names.roots.sinkState}/` }));
  assert.deepEqual(readerListed.Contents?.map((o) => o.Key), [stateKey]);
  const readerKey = `${names.tables.transactions.path}/dt=2026-01-01/hour=00/reader.parquet`;
  assert.equal(await refusal(reader.send(new PutObjectCommand({ Bucket: bucket, Key: readerKey, Body: 'x' })), 'reader put'), denied);
  assert.equal(await refusal(reader.send(new DeleteObjectCommand({ Bucket: bucket, Key: tableKey })), 'reader delete'), denied);
  assert.equal(await exists(root, bucket, readerKey), false);
  assert.equal(await exists(root, bucket, tableKey), true, 'the refused delete left the object');
  // a quiet DeleteObjects answers 200 and lists refused keys in Errors[]: the store must not call that done
  await assert.rejects(createObjectStore(reader, bucket).delete([tableKey]), (error: Error) => {
    assert.match(error.message, new RegExp(`could not delete 1 of 1 object.*${tableKey.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*AccessDenied`));
    return true;
  });
  assert.equal(await exists(root, bucket, tableKey), true);
  assert.equal(await refusal(reader.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${other}/` })), 'reader list of another namespace'), denied);

  // the jobs delete their own objects
  for (const key of [tableKey, stateKey]) {
    await jobs.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(await exists(root, bucket, key), false, `${key} deleted`);
  }

  // and nothing outside their prefixes
  const refusedPuts: Array<[string, string, string]> = [
    ['the bucket root', bucket, strayKey],
    ['another namespace', bucket, `${other}/transactions/dt=2026-01-01/hour=00/part-0.parquet`],
    ['another namespace\'s sink state', bucket, `${other}/_lakestream/sinks/x/partition=0.json`],
    ['a sibling of a table path', bucket, `${ns}/transactions_evil/x.parquet`],
    ['another bucket', otherBucket, 'x.txt'],
  ];
  for (const [what, where, key] of refusedPuts) {
    assert.equal(await refusal(jobs.send(new PutObjectCommand({ Bucket: where, Key: key, Body: 'x' })), `put into ${what}`), denied, what);
    assert.equal(await exists(root, where, key), false, `nothing written into ${what}`);
  }
  assert.equal(await refusal(jobs.send(new ListObjectsV2Command({ Bucket: bucket })), 'list of the whole bucket'), denied);
  assert.equal(await refusal(jobs.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${other}/` })), 'list of another namespace'), denied);
  const newBucket = uniqueName('s3create');
  assert.equal(await refusal(jobs.send(new CreateBucketCommand({ Bucket: newBucket })), 'bucket creation'), denied);
  assert.equal(await refusal(root.send(new HeadObjectCommand({ Bucket: newBucket, Key: 'x' })), 'head in the refused bucket'), 'NotFound 404', 'no bucket was created');
  assert.equal(await refusal(jobs.send(new DeleteBucketCommand({ Bucket: otherBucket })), 'bucket deletion'), denied);

  // revoking the namespace's policies takes the access away again
  const revoked = await revokeS3Access(config, names);
  assert.ok(revoked.some((a) => a.detail === `policy ${ns}.${S3_JOBS_USER}: deleted`), revoked.map((a) => a.detail).join('\n'));
  assert.equal(await refusal(jobs.send(new PutObjectCommand({ Bucket: bucket, Key: tableKey, Body: 'x' })), 'put after revoke'), denied);
});
