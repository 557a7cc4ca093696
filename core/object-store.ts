import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { LakestreamError } from './errors.ts';
import { retry } from './retry.ts';

/**
 * The object-store operations the sinks rely on, with their semantics:
 * - `put` overwrites atomically: readers see the old object or the new one, never a mix.
 * - `putJson` with `ifMatch` is a compare-and-set on the object's ETag; with `ifNoneMatch: '*'`
 *   it creates only if absent. A lost race throws PRECONDITION (not retried): the caller has
 *   been fenced by another writer.
 * - `delete` is idempotent: deleting a missing key succeeds; a key the store refuses to delete
 *   (reported per key in the answer) fails the call.
 * - `list` returns every key under a prefix (all pages), a snapshot that a concurrent writer may
 *   already have changed.
 */
export interface ObjectStore {
  readonly bucket: string;
  put(key: string, body: Buffer, contentType?: string): Promise<void>;
  /** The object's bytes, or undefined if there is no such key. */
  get(key: string): Promise<Buffer | undefined>;
  getJson<T>(key: string): Promise<{ value: T; etag: string } | undefined>;
  putJson(key: string, value: unknown, condition?: { ifMatch?: string; ifNoneMatch?: '*' }): Promise<string>;
  delete(keys: string[]): Promise<void>;
  list(prefix: string): Promise<string[]>;
  /** As `list`, with each object's last-modified time (the store's clock, not the writer's). */
  listWithTimes(prefix: string): Promise<Array<{ key: string; lastModified: Date }>>;
  /** Whether any key starts with `prefix` (one request, however many there are). */
  hasAny(prefix: string): Promise<boolean>;
}

export class PreconditionFailed extends LakestreamError {
  constructor(key: string) {
    super('S3_ERROR', `conditional write to ${key} lost: another writer changed it`, { context: { key, reason: 'precondition' } });
  }
}

// The one retry layer for S3 (the SDK's own retries are off, see s3.ts): about 20 s of outage is waited out.
const s3Retry = { retries: 8, initialDelayMs: 100, maxDelayMs: 5_000 };

export function createObjectStore(s3: S3Client, bucket: string): ObjectStore {
  const listWithTimes: ObjectStore['listWithTimes'] = async (prefix) => {
    const objects: Array<{ key: string; lastModified: Date }> = [];
    let token: string | undefined;
    do {
      const page = await retry(() => s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token })), s3Retry);
      for (const object of page.Contents ?? []) objects.push({ key: object.Key!, lastModified: object.LastModified! });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects;
  };
  return {
    bucket,
    async put(key, body, contentType = 'application/octet-stream') {
      await retry(() => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType })).then(() => {}), s3Retry);
    },

    async get(key) {
      return retry(async () => {
        try {
          const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          return Buffer.from(await response.Body!.transformToByteArray());
        } catch (error) {
          if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
          throw error;
        }
      }, s3Retry);
    },

    async getJson<T>(key: string) {
      return retry(async () => {
        try {
          const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          const text = await response.Body!.transformToString();
          return { value: JSON.parse(text) as T, etag: response.ETag! };
        } catch (error) {
          if ((error as { name?: string }).name === 'NoSuchKey') return undefined;
          throw error;
        }
      }, s3Retry);
    },

    async putJson(key, value, condition = {}) {
      return retry(
        async ({ bail }) => {
          try {
            const response = await s3.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: key,
                Body: JSON.stringify(value),
                ContentType: 'application/json',
                IfMatch: condition.ifMatch,
                IfNoneMatch: condition.ifNoneMatch,
              }),
            );
            return response.ETag!;
          } catch (error) {
            const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
            if (status === 412 || (error as { name?: string }).name === 'PreconditionFailed') bail(new PreconditionFailed(key));
            throw error;
          }
        },
        s3Retry,
      );
    },

    async list(prefix) {
      return (await listWithTimes(prefix)).map((object) => object.key);
    },

    listWithTimes,

    async hasAny(prefix) {
      const page = await retry(() => s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 })), s3Retry);
      return Boolean(page.KeyCount);
    },

    async delete(keys) {
      for (let i = 0; i < keys.length; i += 1000) {
        const chunk = keys.slice(i, i + 1000).map((Key) => ({ Key }));
        const answer = await retry(() => s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: chunk, Quiet: true } })), s3Retry);
        // A quiet DeleteObjects answers 200 and lists only the keys it could not delete: a
        // cleanup that ignored them would leave files behind as if they were gone.
        const refused = (answer.Errors ?? []).filter((error) => error.Code !== 'NoSuchKey');
        if (refused.length) {
          const first = refused[0]!;
          throw new LakestreamError('S3_ERROR', `could not delete ${refused.length} of ${chunk.length} object(s) in ${bucket}, e.g. ${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(), {
            retriable: refused.every((error) => error.Code === 'InternalError' || error.Code === 'SlowDown'),
            context: { bucket, key: first.Key, reason: first.Code },
          });
        }
      }
    },
  };
}
