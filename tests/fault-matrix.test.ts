/**
 * The fault matrix: every fault × every lane at once (db, atomic, lock, signal, redis in one
 * cluster per fault), keyed and unkeyed buyers and admin calls mixed in, each run judged by the
 * history checker (tests/checker/checker.ts). A failure prints every violation and the per-lane
 * figures, and the seed to replay the workload. Every fault runs on both cluster modes (`primary`, and
 * `allotments`, where every replica sells). Budget: ~5-9 min (one cluster per fault and mode,
 * 15-70 s each on a busy two-core machine; the allotments half took 150 s at load ~25).
 */
import { describeResult } from './checker/checker.js';
import { startMongo, startRedis, stopAll, type Dependency } from './harness/deps.js';
import { FAULTS, runFaults } from './support/fault-run.js';

afterAll(stopAll);

describe('fault matrix, judged by the history checker', () => {
  let shared: { mongo: Dependency; redis: Dependency };

  beforeAll(async () => {
    shared = { mongo: await startMongo(), redis: await startRedis({ persistent: true }) };
  });

  // Both cluster modes, the same faults and workload (seeds differ per mode, so each run is replayable on its own).
  const cases = (['primary', 'allotments'] as const).flatMap((mode, m) => FAULTS.map((fault, i) => [mode, fault, 1000 + 100 * m + i] as const));
  test.each(cases)('%s mode: %s (seed %d)', async (mode, fault, seed) => {
    const report = await runFaults({ faults: [fault], seed, faultMs: 3000, trafficBetween: 40, buyersPerLane: 2, shared, mode, log: (line) => console.log(`[${mode} ${fault}] ${line}`) });
    console.log(`[${mode} ${fault}] ${report.requests} requests, ${report.acknowledged} acknowledged, ${report.unresolvedKeys} keys unresolved, ${report.elapsedMs} ms\n${describeResult(report.result)}`);
    expect(report.result.violations).toEqual([]);
    expect(report.acknowledged).toBeGreaterThanOrEqual(80); // 40 before the fault and 40 after, at least
  }, 120_000);
});
