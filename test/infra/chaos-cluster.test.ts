import { chaosTests } from './chaos-cases.ts';

// Split from the services' scenarios so that each test file stays within the runner's 10-minute limit.
chaosTests(['broker', 'controller', 'two-brokers', 'rf1']);
