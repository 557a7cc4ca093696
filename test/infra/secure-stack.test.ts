import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { catalog } from '../../platform/catalog.ts';
import { loadConfig } from '../../core/config.ts';
import { applyS3Access } from '../../infra/s3-access.ts';
import { s3UsersDir } from '../../infra/stack/minio.ts';
import { createS3 } from '../../core/s3.ts';
import { uniqueName, runCliFile } from '../helpers.ts';

/**
 * `stack:up -- --secure` restarts Kafka without its open listener: brokers sign in to each other
 * as the admin (SCRAM) and to the controllers with PLAIN, clients only get in with a password.
 * The test puts the shared stack back in its open mode afterwards, whatever happens.
 */
const stackCli = (args: string[], env: Record<string, string> = {}) => runCliFile('infra/stack/cli.ts', args, env, 300_000);

function portAnswers(address: string): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test('stack:up --secure: no open listener; infra:apply, the producer and SQL work with the stack users (Kafka and S3), a wrong password is refused', { timeout: 600_000 }, async (t) => {
  t.after(async () => {
    await stackCli(['down']);
    const reopened = await stackCli(['up']);
    assert.equal(reopened.status, 0, reopened.stderr);
  });
  assert.equal((await stackCli(['down'])).status, 0);
  const up = await stackCli(['up', '--secure']);
  assert.equal(up.status, 0, up.stderr + up.stdout);
  assert.match(up.stdout, /kafka +127\.0\.0\.1:9192/);

  // the stack's base ports, whatever mode stack.env describes
  for (const address of loadConfig(process.env, { useStackEnv: false }).KAFKA_BROKERS) assert.equal(await portAnswers(address), false, `${address} (open PLAINTEXT) is closed`);

  // the stack's own env (stack.env) now points every command at the SASL listeners
  const clean = { KAFKA_BROKERS: '', KAFKA_SECURITY_PROTOCOL: '', KAFKA_CREDENTIALS_DIR: '' };
  const namespace = uniqueName('secure');
  // the stack's S3 users may write the production namespace only: an operator grants a second
  // namespace its prefixes (as MinIO's admin) before infra:apply creates its Iceberg tables there
  const admin = loadConfig(process.env, { useStackEnv: false });
  await applyS3Access(admin, catalog(namespace), s3UsersDir({ stackDir: admin.LAKESTREAM_STACK_DIR }));
  const apply = await runCliFile('infra/apply-cli.ts', ['--namespace', namespace], clean);
  assert.equal(apply.status, 0, apply.stderr);
  assert.match(apply.stdout, /acl +transactions-backup-job-user/);
  assert.match(apply.stdout, /created +\S+\.transactions +Iceberg table/, 'the lake tables were created as the jobs user');
  const produce = await runCliFile('ingest/cli.ts', ['transactions', '--topic', `${namespace}.transactions`, '--count', '500'], clean);
  assert.equal(produce.status, 0, produce.stderr);
  assert.match(produce.stderr + produce.stdout, /sent 500, failed 0/);

  // S3: commands now sign in as lakestream-jobs, which reads the lake but cannot write outside it
  const secured = loadConfig();
  assert.equal(secured.S3_ACCESS_KEY_ID, 'lakestream-jobs');
  const sql = await runCliFile('sql/cli.ts', ['SELECT count(*) AS n FROM transactions', '--format', 'csv'], clean);
  assert.equal(sql.status, 0, sql.stderr);
  const s3 = createS3(secured);
  try {
    await assert.rejects(s3.send(new PutObjectCommand({ Bucket: secured.LAKE_BUCKET, Key: `outside-${namespace}.txt`, Body: 'x' })), { name: 'AccessDenied' });
  } finally {
    s3.destroy();
  }

  const wrong = await runCliFile('ingest/cli.ts', ['transactions', '--topic', `${namespace}.transactions`, '--count', '5'], { ...clean, KAFKA_SASL_USERNAME: 'admin', KAFKA_SASL_PASSWORD: 'guess' });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /rejected the credentials of user admin/);
});
