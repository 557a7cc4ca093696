import { AclOperations, AclPermissionTypes, ResourcePatternTypes, ResourceTypes, type Acl } from '@platformatic/kafka';
import { processorDeclarations, topicDeclarations, type Catalog, type ProcessorDeclaration, type TopicId } from './catalog.ts';

/**
 * Who may do what on a secured cluster, derived from the catalog: one Kafka user per job and per
 * producer, each allowed exactly what its job needs and nothing else. `infra:apply` creates the
 * users and these ACLs; a job signs in as its user (KAFKA_CREDENTIALS_DIR).
 *
 * Users are cluster-wide; the ACLs name the namespaced topics, groups and transactional ids, so a
 * namespace (a test, a second environment) grants the same users access to its own names only.
 */
export interface KafkaUserGrant {
  user: string;
  purpose: string;
  read: string[];
  write: string[];
  /** Consumer groups the user joins or commits to (prefixes where `prefixedGroups`). */
  groups: string[];
  /** Groups named by prefix: the changelog restorers' `lakestream-restore-<topic>`. */
  prefixedGroups: string[];
  /** Transactional ids, by prefix (`<job>-<instance>`). */
  transactionalIdPrefixes: string[];
}

/** The names the seed lab gave its users are kept for the transactions pipeline. */
const userNames: Record<string, string> = {
  'transactions-job-backup': 'transactions-backup-job-user',
  'transactions-ml-features-job': 'transactions-ml-features-job-user',
};

/** The Kafka user a job (or a topic's producer, `<topic>-producer`) signs in as. */
export function kafkaUserOf(job: string): string {
  return userNames[job] ?? `${job}-user`;
}

export function producerJob(topic: TopicId): string {
  return `${topicDeclarations[topic].name}-producer`;
}

export function kafkaUserGrants(catalog: Catalog): KafkaUserGrant[] {
  const grants: KafkaUserGrant[] = [];
  const restoreGroup = (topic: string) => `lakestream-restore-${topic}`;
  for (const id of ['transactions', 'shopEvents'] as const) {
    grants.push({
      user: kafkaUserOf(producerJob(id)),
      purpose: `publishes ${catalog.topic[id]}`,
      read: [],
      write: [catalog.topic[id]],
      groups: [],
      prefixedGroups: [],
      // ingest/topic-producer.ts: one transactional id per producer process
      transactionalIdPrefixes: [`${catalog.topic[id]}-producer-`],
    });
  }
  const gatewayTopics = Object.entries(topicDeclarations).flatMap(([id, d]) => ('gateway' in d && d.gateway ? [catalog.topic[id as TopicId]] : []));
  grants.push({
    user: kafkaUserOf('gateway'),
    purpose: `publishes ${gatewayTopics.join(', ')} for HTTP clients`,
    read: [],
    write: gatewayTopics,
    groups: [],
    prefixedGroups: [],
    // gateway/server.ts: one transactional id per gateway process
    transactionalIdPrefixes: [`${catalog.group('gateway')}-`],
  });
  for (const table of Object.values(catalog.tables)) {
    grants.push({
      user: kafkaUserOf(table.sink),
      purpose: `archives ${table.topic} to the lake`,
      read: [table.topic],
      write: [catalog.deadLetterTopic(table.topic)],
      groups: [table.group],
      prefixedGroups: [],
      transactionalIdPrefixes: [],
    });
  }
  for (const feature of Object.values(catalog.features)) {
    if (!feature.redisSink || !feature.redisSinkGroup) continue;
    grants.push({
      user: kafkaUserOf(feature.redisSink),
      purpose: `serves ${feature.topic} from Redis`,
      read: [feature.topic],
      write: [catalog.deadLetterTopic(feature.topic)],
      groups: [feature.redisSinkGroup],
      prefixedGroups: [],
      transactionalIdPrefixes: [],
    });
  }
  for (const processor of Object.values(processorDeclarations) as ProcessorDeclaration[]) {
    const input = catalog.topic[processor.input];
    const outputs = processor.outputs.map((id) => catalog.topic[id]);
    const changelogs = Object.values(processor.stores ?? {}).map((id) => catalog.topic[id]);
    const written = [...new Set([...outputs, ...changelogs])];
    const group = catalog.group(processor.name);
    grants.push({
      user: kafkaUserOf(processor.name),
      purpose: `reads ${input}, writes ${written.join(', ')} in transactions`,
      read: [input, ...changelogs],
      write: [...written, catalog.deadLetterTopic(input)],
      groups: [group],
      // a store is restored by a consumer of group lakestream-restore-<changelog>
      prefixedGroups: changelogs.map(restoreGroup),
      transactionalIdPrefixes: [`${group}-`],
    });
  }
  return grants;
}

/** Every user's grants as Kafka ACL bindings (allow, any host). */
export function aclsOf(grant: KafkaUserGrant): Acl[] {
  const principal = `User:${grant.user}`;
  const allow = (resourceType: number, resourceName: string, operation: number, pattern: number = ResourcePatternTypes.LITERAL): Acl =>
    ({ resourceType, resourceName, resourcePatternType: pattern, principal, host: '*', operation, permissionType: AclPermissionTypes.ALLOW }) as Acl;
  const acls = [
    ...grant.read.flatMap((topic) => [allow(ResourceTypes.TOPIC, topic, AclOperations.READ), allow(ResourceTypes.TOPIC, topic, AclOperations.DESCRIBE)]),
    ...grant.write.flatMap((topic) => [allow(ResourceTypes.TOPIC, topic, AclOperations.WRITE), allow(ResourceTypes.TOPIC, topic, AclOperations.DESCRIBE)]),
    ...grant.groups.map((group) => allow(ResourceTypes.GROUP, group, AclOperations.READ)),
    ...grant.prefixedGroups.map((group) => allow(ResourceTypes.GROUP, group, AclOperations.READ, ResourcePatternTypes.PREFIXED)),
    ...grant.transactionalIdPrefixes.flatMap((prefix) => [
      allow(ResourceTypes.TRANSACTIONAL_ID, prefix, AclOperations.WRITE, ResourcePatternTypes.PREFIXED),
      allow(ResourceTypes.TRANSACTIONAL_ID, prefix, AclOperations.DESCRIBE, ResourcePatternTypes.PREFIXED),
    ]),
  ];
  // a changelog is both read and written: one DESCRIBE binding for it
  return [...new Map(acls.map((acl) => [JSON.stringify(acl), acl])).values()];
}
