/**
 * `make soak`: the fault matrix for people, not CI — for SOAK_MINUTES (default 5), rounds of
 * random fault sequences (each round a fresh cluster; a round may start with MongoDB and Redis
 * not yet up, then two to four faults in a row under heavier load, admin PUTs and resets mixed in
 * with the restocks), every round judged by the history checker. The seed is printed first; `SOAK_SEED=<seed> make soak` replays the same
 * choices (the faults' timing still depends on the machine). `CLUSTER_MODE=allotments make soak`
 * runs the rounds on allotments mode.
 */
import { describeResult } from '../checker/checker.js';
import { seededRandom } from '../checker/workload.js';
import { stopAll } from '../harness/deps.js';
import { FAULTS, runFaults, type Fault } from '../support/fault-run.js';

afterAll(stopAll);

const seed = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) : Math.floor(Math.random() * 2 ** 31);
const minutes = Number(process.env.SOAK_MINUTES ?? 5);
const mode = process.env.CLUSTER_MODE === 'allotments' ? 'allotments' : 'primary';
console.log(`soak: SOAK_SEED=${seed} SOAK_MINUTES=${minutes} CLUSTER_MODE=${mode} (replay with: SOAK_SEED=${seed} CLUSTER_MODE=${mode} make soak)`);

test(`random fault sequences for ${minutes} min (SOAK_SEED=${seed})`, async () => {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const deadline = Date.now() + minutes * 60_000;
  for (let round = 1; Date.now() < deadline; round++) {
    const repeatable = FAULTS.filter((f) => f !== 'deps-late');
    const faults: Fault[] = [...(random() < 0.25 ? ['deps-late' as const] : []), ...Array.from({ length: 2 + Math.floor(random() * 3) }, () => pick(repeatable))];
    const roundSeed = Math.floor(random() * 2 ** 31);
    const faultMs = 1000 + Math.floor(random() * 5000);
    const lines: string[] = [];
    const report = await runFaults({ faults, seed: roundSeed, faultMs, trafficBetween: 150, buyersPerLane: 3, resettingShare: 0.2, mode, log: (line) => lines.push(line) }).catch((error: unknown) => {
      throw new Error(`SOAK_SEED=${seed}, round ${round}: ${faults.join(' → ')} (fault ${faultMs} ms) failed: ${error instanceof Error ? error.message : String(error)}\n${lines.join('\n')}`);
    });
    const summary = `round ${round}: ${faults.join(' → ')} (fault ${faultMs} ms): ${report.requests} requests, ${report.acknowledged} acknowledged, ${report.elapsedMs} ms`;
    console.log(report.result.valid ? summary : `${summary}\n${lines.join('\n')}\n${describeResult(report.result)}`);
    if (!report.result.valid) throw new Error(`SOAK_SEED=${seed}, ${summary}\n${describeResult(report.result)}`);
  }
}, (minutes + 10) * 60_000);
