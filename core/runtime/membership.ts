import kafkaJavascript from '@confluentinc/kafka-javascript';
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

/** The batch was refused because the consumer is out of its group: drop it and rejoin by polling. */
export class GroupMembershipLost extends LakestreamError {
  constructor(cause: unknown) {
    super('KAFKA_ERROR', `the consumer is no longer a member of its group: ${errorMessage(cause)}`, { cause });
  }
}
