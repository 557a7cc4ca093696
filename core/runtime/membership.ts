import kafkaJavascript from '@confluentinc/kafka-javascript';
import {
  FindCoordinatorKeyTypes,
  kGetApi,
  kGetConnection,
  kMetadata,
  type Admin,
  type API,
  type ClusterMetadata,
  type Connection,
  type leaveGroupV5,
} from '@platformatic/kafka';
import { fromCallback } from '../async.ts';
import { LakestreamError, errorMessage } from '../errors.ts';

const membershipCodes: number[] = [
  kafkaJavascript.CODES.ERRORS.ERR_UNKNOWN_MEMBER_ID,
  kafkaJavascript.CODES.ERRORS.ERR_ILLEGAL_GENERATION,
  kafkaJavascript.CODES.ERRORS.ERR_FENCED_INSTANCE_ID,
];

/** Whether Kafka refused the consumer's group membership (librdkafka may only say so per partition, in the message). */
export function lostGroupMembership(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === 'number' && membershipCodes.includes(code)) || /Unknown member|Illegal generation|Fenced instance/i.test(errorMessage(error));
}

/** Whether another process took this consumer's static membership (the same group.instance.id). */
export function fencedInstance(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === kafkaJavascript.CODES.ERRORS.ERR_FENCED_INSTANCE_ID || /fenced instance|FENCED_INSTANCE_ID/i.test(errorMessage(error));
}

/** The batch was refused because the consumer is out of its group: drop it and rejoin by polling. */
export class GroupMembershipLost extends LakestreamError {
  constructor(cause: unknown) {
    super('KAFKA_ERROR', `the consumer is no longer a member of its group: ${errorMessage(cause)}`, { cause });
  }
}

/** Kafka's UNKNOWN_MEMBER_ID: the member is not in the group (never joined, or already removed). */
const UNKNOWN_MEMBER_ID = 25;

type LeaveGroupRequestMember = leaveGroupV5.LeaveGroupRequestMember;
type LeaveGroupResponse = leaveGroupV5.LeaveGroupResponse;

/**
 * Removes a static member from its group the way KIP-345's admin removal does (an empty member
 * id and the member's group instance id). A static member's own close sends no LeaveGroup: the
 * group keeps its partitions for it for a session, waiting for it to come back. A clean stop may
 * be a scale-down, so it leaves here and its partitions move at once; a crash keeps them for the
 * restart. The admin client's own removal sends only member ids, which a static member's group
 * may refuse, so the request goes through its connection to the coordinator.
 */
export async function leaveAsStaticMember(admin: Admin, groupId: string, groupInstanceId: string): Promise<void> {
  const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] });
  if (!coordinator) throw new LakestreamError('KAFKA_ERROR', `no coordinator found for group ${groupId}`, { retriable: true });
  const metadata = await fromCallback<ClusterMetadata>((cb) => admin[kMetadata]({ topics: [] }, cb));
  const broker = metadata.brokers.get(coordinator.nodeId);
  if (!broker) throw new LakestreamError('KAFKA_ERROR', `group ${groupId}'s coordinator ${coordinator.nodeId} is not in the cluster metadata`, { retriable: true });
  const connection = await fromCallback<Connection>((cb) => admin[kGetConnection](broker, cb));
  const leaveGroup = await fromCallback<API<[string, LeaveGroupRequestMember[]], LeaveGroupResponse>>((cb) => admin[kGetApi]('LeaveGroup', cb));
  try {
    await fromCallback<LeaveGroupResponse>((cb) => leaveGroup(connection, groupId, [{ memberId: '', groupInstanceId, reason: 'clean stop' }], cb));
  } catch (error) {
    const members = (error as { response?: LeaveGroupResponse }).response?.members;
    if (members?.length && members.every((member) => member.errorCode === UNKNOWN_MEMBER_ID)) return;
    throw error;
  }
}
