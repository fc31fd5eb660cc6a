import os from 'node:os';
import { defineConfig } from 'vitest/config';
import SummaryReporter from './test/helpers/summary-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    // Safety nets against hangs, not timing goals: two files share the machine at a time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Most files wait on child processes and sockets more than they compute: two at a time even on
    // a 2-core machine (vitest's default there is one), which takes the suite from about 9 to 6.5
    // minutes with every test passing.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
    globalSetup: ['./test/helpers/global-setup.ts'],
    reporters: ['default', new SummaryReporter()],
  },
});
