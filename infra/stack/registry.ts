import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LakestreamError } from '../../core/errors.ts';
import type { StackContext, StackService } from './context.ts';
import { download, isInstalled, markInstalled, run } from './install.ts';
import { javaHome } from './java.ts';
import { startDaemon } from './processes.ts';

/**
 * Apicurio Registry 3.x: a Confluent-compatible Schema Registry whose Confluent API lives at
 * /apis/ccompat/v7. The runnable Quarkus app is the `all` tar.gz attached to the artifact on
 * Maven Central. 3.3.x needs Java 21+: it runs on the newest JDK found under /usr/lib/jvm (or
 * APICURIO_JAVA_HOME); where only Java 17 exists, 3.0.9 (same API, built for 17) is used.
 * See docs/decisions/0001-local-stack.md.
 */
interface Flavour {
  version: string;
  java: string;
  jar: string;
  /** 3.3.x serves health on a separate management port and runs on a JDK with auto CDS archives. */
  managementPort: boolean;
}

function flavour(): Flavour {
  const modern = javaHome(21, process.env.APICURIO_JAVA_HOME);
  if (modern) return { version: '3.3.3', java: join(modern, 'bin', 'java'), jar: 'quarkus-run.jar', managementPort: true };
  const legacy = javaHome(17, process.env.APICURIO_JAVA_HOME);
  if (legacy) return { version: '3.0.9', java: join(legacy, 'bin', 'java'), jar: 'apicurio-registry-app-3.0.9-runner.jar', managementPort: false };
  throw new LakestreamError('STACK_INSTALL_FAILED', 'the schema registry needs Java 17 or newer; none was found under /usr/lib/jvm (set APICURIO_JAVA_HOME)', {
    context: { service: 'schema-registry' },
  });
}

const tarball = (version: string) =>
  `https://repo1.maven.org/maven2/io/apicurio/apicurio-registry-app/${version}/apicurio-registry-app-${version}-all.tar.gz`;

const appDir = (ctx: Pick<StackContext, 'cacheDir'>, version: string) => join(ctx.cacheDir, 'apicurio', version);

function ports(ctx: StackContext): { http: number; management: number; host: string } {
  const url = new URL(ctx.config.SCHEMA_REGISTRY_URL);
  const http = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  // Quarkus serves health on a separate management port (9000 by default, which MinIO uses).
  return { http, management: http + 1000, host: url.hostname };
}

export const registry: StackService = {
  name: 'schema-registry',

  async install(ctx) {
    const { version } = flavour();
    const dir = appDir(ctx, version);
    if (isInstalled(dir)) return;
    ctx.progress(`schema-registry: downloading Apicurio Registry ${version} from Maven Central (first run only, 115-160 MB)`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'app.tar.gz');
    await download('schema-registry', tarball(version), file, ctx.progress);
    await run('schema-registry', 'tar', ['-xzf', file, '-C', dir]);
    rmSync(file);
    markInstalled(dir);
  },

  async start(ctx) {
    const { http, management, host } = ports(ctx);
    const app = flavour();
    const dataDir = join(ctx.stackDir, 'schema-registry');
    mkdirSync(dataDir, { recursive: true });
    startDaemon(ctx.stackDir, {
      name: 'schema-registry',
      command: app.java,
      cwd: dataDir,
      args: [
        // Small and quiet: the registry is read once per schema id by clients, which cache it.
        '-Xms64m',
        '-Xmx256m',
        '-XX:MaxMetaspaceSize=192m',
        '-XX:ReservedCodeCacheSize=64m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-XX:CICompilerCount=1',
        '-XX:ActiveProcessorCount=1',
        // A class-data archive (JDK 19+) halves the registry's start time after the first run.
        ...(app.managementPort ? ['-XX:+AutoCreateSharedArchive', `-XX:SharedArchiveFile=${join(appDir(ctx, app.version), 'app-cds.jsa')}`] : []),
        `-Dquarkus.http.host=${host}`,
        `-Dquarkus.http.port=${http}`,
        ...(app.managementPort ? [`-Dquarkus.management.host=${host}`, `-Dquarkus.management.port=${management}`] : []),
        `-Dapicurio.datasource.url=jdbc:h2:file:${join(dataDir, 'registry')}`,
        '-Dapicurio.datasource.jdbc.initial-size=2',
        '-Dapicurio.datasource.jdbc.min-size=2',
        '-Dapicurio.datasource.jdbc.max-size=8',
        // Every subject is checked, even one created by a client that sets no rule of its own.
        '-Dapicurio.rules.global.compatibility=BACKWARD_TRANSITIVE',
        '-Dapicurio.rest.deletion.artifact.enabled=true',
        '-Dapicurio.rest.deletion.artifact-version.enabled=true',
        '-Dquarkus.http.access-log.enabled=false',
        '-Dapicurio.logconfigjob.every=10m',
        '-Dapicurio.usage.flush.every=10m',
        '-jar',
        join(appDir(ctx, app.version), app.jar),
      ],
    });
  },

  async check(ctx) {
    const response = await fetch(`${ctx.config.SCHEMA_REGISTRY_URL.replace(/\/+$/, '')}/subjects`, { signal: AbortSignal.timeout(3_000) });
    if (response.status !== 200) throw new Error(`GET /subjects answered ${response.status}`);
    await response.arrayBuffer();
  },

  startTimeoutMs: 120_000,
  daemons: () => ['schema-registry'],
  endpoint: (ctx) => ctx.config.SCHEMA_REGISTRY_URL,
};
