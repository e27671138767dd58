import { defineConfig } from 'vitest/config';

// Tests run real brokers, HTTP servers and child processes: give them room, and run test files
// in separate forks so a native crash or a leaked handle stays inside one file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Does nothing unless OUTPOST_TEST_DATABASE=postgres (npm run test:pg): then one PostgreSQL.
    globalSetup: ['test/helpers/pg-global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
  },
});
