/** Unit and integration tests share one run so `npm test` reports one coverage figure. */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  setupFiles: ['<rootDir>/tests/fixtures/setupEnv.ts'],
  // One Graph stand-in answering the token lookups number registration makes (see the file).
  globalSetup: '<rootDir>/tests/fixtures/graphGlobalSetup.ts',
  globalTeardown: '<rootDir>/tests/fixtures/graphGlobalTeardown.ts',
  collectCoverageFrom: ['src/**/*.ts', '!src/**/index.ts'],
  coverageReporters: ['text-summary', 'lcov'],
  coverageThreshold: { global: { lines: 80, statements: 80 } },
  testTimeout: 30000,
};
