// Tests are TypeScript, transformed by swc (type-checking is `npm run typecheck`'s job) and run as
// ES modules, because the service is ESM and @kubernetes/client-node 2.x ships only ESM.
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  // Tests that run the built images (podman) or the local Kubernetes node have targets and a
  // config of their own (tests/containers/jest.config.js): `make image-test`, `make kube-test-local`.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/tests/containers/'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2024' }, module: { type: 'es6' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/tests/harness/global-setup.mjs',
  globalTeardown: '<rootDir>/tests/harness/global-teardown.mjs',
  reporters: ['default', '<rootDir>/tests/harness/closing-line-reporter.mjs'],
  testTimeout: 60000,
  maxWorkers: 1,
};
