import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../core/config.ts';
import { LakestreamError } from '../../core/errors.ts';

const emptyStack = () => mkdtempSync(join(tmpdir(), 'lakestream-config-'));

test('defaults point at the local stack', () => {
  const config = loadConfig({ LAKESTREAM_STACK_DIR: emptyStack() });
  assert.deepEqual(config.KAFKA_BROKERS, ['127.0.0.1:9092', '127.0.0.1:9094', '127.0.0.1:9096']);
  assert.equal(config.SCHEMA_REGISTRY_URL, 'http://127.0.0.1:8081/apis/ccompat/v7');
  assert.equal(config.S3_ENDPOINT, 'http://127.0.0.1:9000');
  assert.equal(config.LAKE_BUCKET, 'lake');
  assert.equal(config.REDIS_URL, 'redis://127.0.0.1:6379');
});

test('an invalid variable is refused with its name and value', () => {
  assert.throws(
    () => loadConfig({ LAKESTREAM_STACK_DIR: emptyStack(), KAFKA_BROKERS: 'localhost', REDIS_URL: 'http://x' }),
    (error: unknown) => {
      assert.ok(error instanceof LakestreamError);
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.match(error.message, /KAFKA_BROKERS: .*host:port.*"localhost"/);
      assert.match(error.message, /REDIS_URL: .*redis/);
      return true;
    },
  );
});

test('the running stack’s endpoints apply unless the environment overrides them', () => {
  const stackDir = emptyStack();
  writeFileSync(join(stackDir, 'stack.env'), 'KAFKA_BROKERS=127.0.0.1:9092\nREDIS_URL=redis://127.0.0.1:7000\n');
  const fromStack = loadConfig({ LAKESTREAM_STACK_DIR: stackDir });
  assert.deepEqual(fromStack.KAFKA_BROKERS, ['127.0.0.1:9092']);
  assert.equal(fromStack.REDIS_URL, 'redis://127.0.0.1:7000');
  const overridden = loadConfig({ LAKESTREAM_STACK_DIR: stackDir, REDIS_URL: 'redis://10.0.0.1:6379' });
  assert.equal(overridden.REDIS_URL, 'redis://10.0.0.1:6379');
  assert.deepEqual(loadConfig({ LAKESTREAM_STACK_DIR: stackDir }, { useStackEnv: false }).KAFKA_BROKERS.length, 3);
});

test('Kafka credentials: a SASL protocol needs a user, a password file is read, and no secret is echoed', () => {
  const stackDir = emptyStack();
  const refused = (env: NodeJS.ProcessEnv, pattern: RegExp) =>
    assert.throws(() => loadConfig({ LAKESTREAM_STACK_DIR: stackDir, ...env }), (error: LakestreamError) => {
      assert.equal(error.code, 'CONFIG_INVALID');
      assert.match(error.message, pattern);
      return true;
    });
  refused({ KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext' }, /KAFKA_SECURITY_PROTOCOL: sasl_plaintext needs KAFKA_SASL_USERNAME/);
  refused({ KAFKA_SECURITY_PROTOCOL: 'ssl' }, /KAFKA_SECURITY_PROTOCOL: .*expected one of/);
  refused({ KAFKA_SASL_USERNAME: 'app' }, /KAFKA_SASL_PASSWORD: KAFKA_SASL_USERNAME=app needs KAFKA_SASL_PASSWORD/);
  refused({ KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD_FILE: join(stackDir, 'missing') }, /KAFKA_SASL_PASSWORD_FILE: no such file/);
  refused({ KAFKA_CREDENTIALS_DIR: join(stackDir, 'nowhere') }, /KAFKA_CREDENTIALS_DIR: no such directory/);
  assert.throws(
    () => loadConfig({ LAKESTREAM_STACK_DIR: stackDir, KAFKA_SASL_PASSWORD: 'hunter2' }),
    (error: LakestreamError) => !error.message.includes('hunter2') && /a Kafka password is set but no KAFKA_SASL_USERNAME/.test(error.message),
  );
  const file = join(stackDir, 'password');
  writeFileSync(file, 's3cret\n');
  const config = loadConfig({ LAKESTREAM_STACK_DIR: stackDir, KAFKA_SECURITY_PROTOCOL: 'sasl_ssl', KAFKA_SASL_USERNAME: 'app', KAFKA_SASL_PASSWORD_FILE: file });
  assert.equal(config.KAFKA_SASL_PASSWORD, 's3cret');
});
