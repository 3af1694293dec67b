import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Kills what a test file left running (a cluster whose start timed out): test/support/reap.ts.
    setupFiles: ['test/support/setup.ts'],
  },
});
