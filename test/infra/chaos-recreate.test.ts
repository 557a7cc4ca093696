import { recreateTest } from './chaos-cases.ts';

recreateTest();
