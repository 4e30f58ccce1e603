import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/mongodb.ts', 'test/setup/kafka.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Tests that spawn daemons compete for two cores; a few files at a time keep them honest.
    maxWorkers: 2,
  },
});
