import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { envSchema, repoRoot } from '../core/config.ts';
import { metricNames } from '../core/metrics.ts';
import { catalog } from '../platform/catalog.ts';
import { composePolicies, composePoliciesDir } from '../infra/compose/write-s3-policies.ts';
import { S3_JOBS_USER, s3Grants } from '../infra/s3-access.ts';

interface Service {
  image?: string;
  build?: string;
  command?: string | string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: unknown;
  entrypoint?: string[];
  profiles?: string[];
  volumes?: string[];
}

const compose = parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

test('docker-compose runs three KRaft brokers with RF 3, minISR 2 and no auto-create', () => {
  const brokers = ['kafka-1', 'kafka-2', 'kafka-3'].map((name) => services[name]);
  const nodeIds = new Set<string>();
  for (const broker of brokers) {
    assert.ok(broker, 'broker service exists');
    assert.match(broker.image ?? '', /^apache\/kafka:4\./);
    const env = broker.environment!;
    assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
    assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, '1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093');
    assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false');
    assert.equal(env.KAFKA_DEFAULT_REPLICATION_FACTOR, '3');
    assert.equal(env.KAFKA_MIN_INSYNC_REPLICAS, '2');
    assert.equal(env.KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, '2');
    nodeIds.add(env.KAFKA_NODE_ID!);
  }
  assert.equal(nodeIds.size, 3, 'distinct node ids');
  // host ports match the local stack's defaults, so the same commands work against either
  assert.deepEqual(brokers.map((b) => b!.ports), [['127.0.0.1:9092:9092'], ['127.0.0.1:9094:9094'], ['127.0.0.1:9096:9096']]);
});

test('docker-compose has the registry, MinIO with the lake bucket, Redis and Kafka UI', () => {
  assert.match(services['schema-registry']?.image ?? '', /^apicurio\/apicurio-registry:3\./);
  assert.match(services.minio?.image ?? '', /^minio\/minio:/);
  assert.match(services['minio-create-bucket']?.entrypoint?.join(' ') ?? '', /mc mb --ignore-existing local\/lake/);
  assert.match(services.redis?.image ?? '', /^redis:/);
  assert.match(services.postgres?.image ?? '', /^postgres:15/);
  assert.equal(services.postgres?.environment?.POSTGRES_DB, 'lakestream');
  assert.match(services['kafka-ui']?.image ?? '', /kafka-ui/);
  assert.match(services.nessie?.image ?? '', /projectnessie\/nessie:0\.99\.0$/, 'the same Iceberg REST catalog as the local stack');
  assert.equal(services.nessie?.environment?.NESSIE_VERSION_STORE_TYPE, 'JDBC2', 'catalog state survives a restart');
  assert.equal(services['kafka-ui']?.environment?.KAFKA_CLUSTERS_0_SCHEMAREGISTRY, 'http://schema-registry:8080/apis/ccompat/v7');
});

test('docker-compose passes the apps an environment the config schema accepts', () => {
  const apps = Object.entries(services).filter(([, service]) => service.build);
  assert.ok(apps.length >= 2, 'app job services are defined');
  for (const [name, service] of apps) {
    const env = service.environment ?? {};
    const unknown = Object.keys(env).filter((key) => !(key in envSchema.shape));
    assert.deepEqual(unknown, [], `${name} passes only known settings`);
    const parsed = envSchema.safeParse(env);
    assert.ok(parsed.success, `${name}: ${parsed.success ? '' : parsed.error.message}`);
    assert.deepEqual(parsed.data.KAFKA_BROKERS, ['kafka-1:19092', 'kafka-2:19092', 'kafka-3:19092']);
    const registryHost = new URL(parsed.data.SCHEMA_REGISTRY_URL).hostname;
    assert.ok(services[registryHost], `${name} points at the compose service ${registryHost}`);
    assert.ok(services[new URL(parsed.data.S3_ENDPOINT).hostname], `${name} S3 endpoint is a compose service`);
    assert.ok(services[new URL(parsed.data.REDIS_URL).hostname], `${name} Redis is a compose service`);
    assert.ok(services[new URL(parsed.data.ICEBERG_CATALOG_URL).hostname], `${name} Iceberg catalog is a compose service`);
    assert.ok(services[new URL(parsed.data.POSTGRES_URL).hostname], `${name} PostgreSQL is a compose service`);
  }
});

test('docker-compose.secure.yml closes every open listener and gives the apps their Kafka users', () => {
  const secure = parse(readFileSync(join(repoRoot, 'docker-compose.secure.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
  for (const name of ['kafka-1', 'kafka-2', 'kafka-3']) {
    const env = { ...services[name]!.environment, ...secure.services[name]!.environment };
    assert.doesNotMatch(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP!, /:PLAINTEXT\b/, `${name} has no PLAINTEXT listener`);
    for (const listener of env.KAFKA_LISTENERS!.split(',').map((l) => l.split(':')[0]!)) {
      assert.match(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP!, new RegExp(`${listener}:SASL_`), `${name}: ${listener} signs in`);
    }
    assert.equal(env.KAFKA_AUTHORIZER_CLASS_NAME, 'org.apache.kafka.metadata.authorizer.StandardAuthorizer');
    assert.equal(env.KAFKA_SUPER_USERS, 'User:admin');
  }
  for (const name of ['infra-apply', 'pipeline', 'scheduler', 'producer']) {
    // a blank value counts as unset, as loadConfig reads the environment
    const env = Object.fromEntries(Object.entries({ ...services[name]!.environment, ...secure.services[name]!.environment }).filter(([, value]) => value !== ''));
    const parsed = envSchema.safeParse(env);
    assert.ok(parsed.success, `${name}: ${parsed.success ? '' : parsed.error.message}`);
    assert.equal(parsed.data.KAFKA_SECURITY_PROTOCOL, 'sasl_plaintext');
    assert.ok(parsed.data.KAFKA_CREDENTIALS_DIR, `${name} reads the users' passwords from the shared volume`);
    assert.ok(secure.services[name]!.volumes?.some((volume) => volume.startsWith('kafka-users:/secrets/kafka-users')));
    // MinIO as the jobs' user, limited to the lake's prefixes: never the root account
    assert.equal(parsed.data.S3_ACCESS_KEY_ID, S3_JOBS_USER, `${name} signs in to MinIO as ${S3_JOBS_USER}`);
    assert.equal(env.S3_SECRET_ACCESS_KEY, undefined, `${name} gets no root secret`);
    assert.equal(parsed.data.S3_SECRET_ACCESS_KEY_FILE, `/secrets/s3-users/${S3_JOBS_USER}`);
    assert.ok(secure.services[name]!.volumes?.includes('s3-users:/secrets/s3-users:ro'), `${name} mounts the S3 users' secrets read-only`);
  }
  const users = secure.services['minio-users']!;
  assert.match(users.image ?? '', /^minio\/mc:RELEASE\./, 'MinIO\'s own client, pinned');
  const script = users.entrypoint!.join(' ');
  for (const grant of s3Grants(catalog(''), 'lake')) {
    assert.match(script, new RegExp(`\\b${grant.user}\\b`), `minio-users creates ${grant.user}`);
  }
  assert.match(script, /mc admin policy create local \$\$user \/policies\/\$\$user\.json/);
  assert.deepEqual(users.volumes, ['s3-users:/secrets/s3-users', './infra/compose/s3-policies:/policies:ro']);
});

test('the S3 policies docker-compose.secure.yml applies are the ones the catalog derives', () => {
  for (const [file, text] of Object.entries(composePolicies())) {
    assert.equal(readFileSync(join(composePoliciesDir, file), 'utf8'), text, `${file} is stale: node --import tsx infra/compose/write-s3-policies.ts`);
  }
});

test('docker-compose has Prometheus scraping the pipeline and Grafana provisioned with the lakestream dashboard', () => {
  const prometheus = services.prometheus!;
  const grafana = services.grafana!;
  assert.match(prometheus.image ?? '', /^prom\/prometheus:v\d+\.\d+\.\d+$/, 'a pinned image');
  assert.match(grafana.image ?? '', /^grafana\/grafana:\d+\.\d+\.\d+$/, 'a pinned image');
  const mounts = (service: Service) => new Map((service.volumes ?? []).map((volume) => volume.split(':') as [string, string]).map(([from, to]) => [to, join(repoRoot, from)]));

  // Prometheus scrapes the port the pipeline serves its metrics on, keeping the jobs' `job` label
  const prometheusConfig = mounts(prometheus).get('/etc/prometheus/prometheus.yml')!;
  assert.ok(existsSync(prometheusConfig), prometheusConfig);
  const scrape = (parse(readFileSync(prometheusConfig, 'utf8')) as { scrape_configs: Array<{ honor_labels?: boolean; static_configs: Array<{ targets: string[] }> }> }).scrape_configs;
  const port = services.pipeline!.environment!.METRICS_PORT;
  assert.ok(port, 'the pipeline serves metrics');
  assert.ok(scrape.some((c) => c.honor_labels === true && c.static_configs.some((s) => s.targets.includes(`pipeline:${port}`))), JSON.stringify(scrape));

  // Grafana: the datasource is the compose Prometheus, the dashboards folder is the mounted one
  const provisioning = mounts(grafana).get('/etc/grafana/provisioning')!;
  const dashboardsDir = [...mounts(grafana)].find(([to]) => to.startsWith('/var/lib/grafana/dashboards'))!;
  const datasources = (parse(readFileSync(join(provisioning, 'datasources', 'prometheus.yml'), 'utf8')) as { datasources: Array<{ uid: string; url: string }> }).datasources;
  assert.equal(new URL(datasources[0]!.url).hostname, 'prometheus');
  assert.ok(services[new URL(datasources[0]!.url).hostname]?.ports?.some((p) => p.endsWith(`:${new URL(datasources[0]!.url).port}`)));
  const providers = (parse(readFileSync(join(provisioning, 'dashboards', 'lakestream.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> }).providers;
  assert.equal(providers[0]!.options.path, dashboardsDir[0]);

  // every query uses a metric the jobs export (a typo would chart nothing, silently)
  const dashboard = JSON.parse(readFileSync(join(dashboardsDir[1], 'lakestream.json'), 'utf8')) as { uid: string; panels: Array<{ title: string; datasource: { uid: string }; targets: Array<{ expr: string }> }> };
  assert.equal(dashboard.uid, 'lakestream');
  const known = new Set([...metricNames, ...metricNames.flatMap((name) => ['_bucket', '_sum', '_count'].map((suffix) => name + suffix)), 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']);
  const functions = new Set(['sum', 'by', 'rate', 'histogram_quantile', 'le', 'job', 'output', 'reason', 'kind', 'partition', 'topic', 'instance', 'label_values']);
  for (const panel of dashboard.panels) {
    assert.equal(panel.datasource.uid, datasources[0]!.uid, panel.title);
    for (const { expr } of panel.targets) {
      const names = (expr.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').match(/[a-z_][a-z0-9_]*/g) ?? []).filter((word) => !functions.has(word));
      assert.ok(names.length > 0, `${panel.title}: ${expr}`);
      for (const name of names) assert.ok(known.has(name), `${panel.title}: ${name} is not a metric the jobs export`);
    }
  }
});

test('docker-compose publishes every port on loopback only', () => {
  const published = Object.entries(services).flatMap(([name, service]) => (service.ports ?? []).map((port) => `${name} ${port}`));
  assert.ok(published.length >= 10, published.join(', '));
  assert.deepEqual(published.filter((entry) => !/ 127\.0\.0\.1:\d+:\d+$/.test(entry)), []);
});
