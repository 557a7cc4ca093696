import { chaosTests } from './chaos-cases.ts';

chaosTests(['lake-writers']);
