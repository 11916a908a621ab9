import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database cloned from a migrated template, so files run in parallel safely.
    fileParallelism: true,
    // Two files at a time. Vitest's default on a 2-core machine is one (cores - 1), which ran the suite file
    // after file: 1,504 tests took 601 s that way and 358 s with two, every test passing both ways (the CI
    // machine has 2 cores; a file's server and its database are most of what it waits on).
    maxWorkers: 2,
  },
});
