import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Admin, alterUserScramCredentialsV0, Connection, describeUserScramCredentialsV0, ScramMechanisms } from '@platformatic/kafka';
import { aclsOf, kafkaUserGrants } from '../platform/access.ts';
import type { Catalog } from '../platform/catalog.ts';
import { LakestreamError, errorMessage } from '../core/errors.ts';
import { adminConnection, type KafkaConnection, splitHostPort } from '../core/kafka.ts';
import type { ApplyAction } from './apply.ts';

/** Kafka's minimum for SCRAM-SHA-512. */
const SCRAM_ITERATIONS = 4096;

/**
 * The password of `user` from `dir`, made up (and written, readable by the owner only) when the
 * file does not exist yet: the local stack's way of handing out credentials. Elsewhere the files
 * come from a secret store and this only reads them.
 */
export function ensurePassword(dir: string, user: string): { password: string; created: boolean } {
  const file = join(dir, user);
  if (existsSync(file)) return { password: readFileSync(file, 'utf8').trim(), created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  try {
    // exclusive: of two processes making one up at once, both keep the first one's
    writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') return { password: readFileSync(file, 'utf8').trim(), created: false };
    throw error;
  }
  chmodSync(file, 0o600);
  return { password, created: true };
}

/** Creates or updates SCRAM-SHA-512 credentials, salted here: the password never leaves this process. */
/** A raw connection to the first broker, signed in as the admin: for the APIs the Admin client lacks. */
async function withBrokerConnection<T>(connection: KafkaConnection, use: (client: Connection) => Promise<T>): Promise<T> {
  const broker = connection.KAFKA_BROKERS[0]!;
  const client = new Connection('lakestream-admin', { connectTimeout: 10_000, requestTimeout: 15_000, ...adminConnection(connection) });
  try {
    await client.connect(splitHostPort(broker).host, splitHostPort(broker).port);
    return await use(client);
  } finally {
    await client.close().catch(() => {});
  }
}

/** Creates or updates SCRAM-SHA-512 credentials, salted here: the password never goes over the wire. */
export async function upsertScramUsers(connection: KafkaConnection, users: Array<{ user: string; password: string }>): Promise<void> {
  if (!users.length) return;
  const upsertions = users.map(({ user, password }) => {
    const salt = randomBytes(32);
    return { name: user, mechanism: ScramMechanisms.SCRAM_SHA_512, iterations: SCRAM_ITERATIONS, salt, saltedPassword: pbkdf2Sync(password, salt, SCRAM_ITERATIONS, 64, 'sha512') };
  });
  const response = await withBrokerConnection(connection, (client) => alterUserScramCredentialsV0.api.async(client, [], upsertions));
  const failed = response.results.filter((result) => result.errorCode !== 0);
  if (failed.length) {
    throw new LakestreamError('KAFKA_ERROR', `could not set SCRAM credentials: ${failed.map((f) => `${f.user}: ${f.errorMessage ?? `error ${f.errorCode}`}`).join('; ')}`);
  }
}

/** The users that have a SCRAM credential (asking by name fails the whole request for a missing one). */
async function scramUsers(connection: KafkaConnection): Promise<Set<string>> {
  // a null list means every user
  const everyone = null as unknown as Array<{ name: string }>;
  const response = await withBrokerConnection(connection, (client) => describeUserScramCredentialsV0.api.async(client, everyone));
  return new Set(response.results.filter((r) => r.errorCode === 0 && r.credentialInfos.length > 0).map((r) => r.user));
}

/**
 * Creates each job's Kafka user (password from `credentialsDir`, made up for the local stack when
 * missing) and grants it its ACLs. Idempotent: existing ACLs stay, existing users keep their
 * password (the credential is re-salted only when its file was just created).
 */
export async function applyAccess(catalog: Catalog, deps: { admin: Admin; connection: KafkaConnection; credentialsDir: string }): Promise<ApplyAction[]> {
  const actions: ApplyAction[] = [];
  const grants = kafkaUserGrants(catalog);
  const users = grants.map((grant) => ({ user: grant.user, ...ensurePassword(deps.credentialsDir, grant.user) }));
  const existing = await scramUsers(deps.connection);
  const toSet = users.filter((u) => u.created || !existing.has(u.user));
  await upsertScramUsers(deps.connection, toSet);
  for (const u of toSet) actions.push({ kind: 'user', topic: u.user, detail: `SCRAM-SHA-512 credential set (password in ${join(deps.credentialsDir, u.user)})` });
  for (const grant of grants) {
    const acls = aclsOf(grant);
    try {
      await deps.admin.createAcls({ creations: acls });
    } catch (error) {
      throw new LakestreamError('KAFKA_ERROR', `could not grant ${grant.user} its ACLs: ${errorMessage(error)}`, { cause: error });
    }
    actions.push({ kind: 'acl', topic: grant.user, detail: `${acls.length} ACLs: ${grant.purpose}` });
  }
  return actions;
}
