import { chaosTests, recreateTest } from './chaos-cases.ts';

// Split from the cluster's scenarios so that each test file stays within the runner's 10-minute limit.
chaosTests(['minio', 'redis', 'jobs', 'rebalance']);
recreateTest();
