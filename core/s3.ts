import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from './config.ts';

type S3Settings = Pick<Config, 'S3_ENDPOINT' | 'S3_REGION' | 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY'>;

// The pinned SDK works on Node 20; its notice about future releases needing Node 22 would only
// clutter every command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function createS3(config: S3Settings): S3Client {
  return new S3Client({
    endpoint: config.S3_ENDPOINT,
    region: config.S3_REGION,
    // Path-style addressing works with MinIO and any S3 endpoint without wildcard DNS.
    forcePathStyle: true,
    credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
    // object-store.ts retries every call with backoff; SDK retries underneath would multiply them
    maxAttempts: 1,
  });
}
