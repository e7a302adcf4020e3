// Jest's own summary ("Tests: 3 passed, 3 total") is not a line other tools read. This reporter
// ends every run with the plain one they do — "jest: N passed, N failed" (", N skipped" when any
// were) — so a CI that counts executed tests counts ours. Jest prints its summary after the
// custom reporters have run, so the line is written as the process exits, on stdout (synchronous
// there on Linux, for files and pipes alike), where a reader of the run's output looks for it.
// With JEST_COUNTS_FILE set, the counts are also appended there, so `.ci/run` can close on the
// sum of its three Jest runs.
import { appendFileSync } from 'node:fs';

export default class ClosingLineReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    // A suite that failed to load runs no test but is still a failure.
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `jest: ${results.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`;
    const countsFile = process.env.JEST_COUNTS_FILE;
    if (countsFile) appendFileSync(countsFile, `${results.numPassedTests} ${failed} ${skipped}\n`);
    process.once('exit', () => process.stdout.write(line));
  }
}
