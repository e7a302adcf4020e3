// The tests that run what `make image` built — containers under podman, and the local
// single-node Kubernetes — selected by `make image-test` / `make kube-test-local` rather than
// `make test`, because they need the images first. They bring their own Redis and MongoDB (as
// containers), so the shared ones of the main config are not started.
import base from '../../jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  rootDir: '../..',
  roots: ['<rootDir>/tests/containers'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: undefined,
  globalTeardown: undefined,
};
