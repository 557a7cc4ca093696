import { chaosTests } from './chaos-cases.ts';

// one file per scenario or two: the runner gives each file 10 minutes, and a cut file hides its logs
chaosTests(['zombie']);
