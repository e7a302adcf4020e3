/**
 * The metric catalogue. Request metrics are counted by each worker in its own registry (nothing
 * is logged per request; counting is the record); the main thread merges the workers' snapshots
 * with prom-client's aggregator and adds what is process-wide — Node's default metrics and the
 * stock gauges, read straight from shared memory and the lanes' stores — so a scrape of
 * METRICS_PORT sees one replica, not N workers.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { ClusterMode, LaneName } from './config.js';
import { LANE_NAMES } from './config.js';
import type { StockLevel } from './lanes/lane.js';

export const PREFIX = 'superstock_';

/**
 * The role and epoch gauges, read from the cluster state at scrape time — one definition for both
 * cluster modes' controllers (in allotments mode every replica that may sell says primary, and the
 * epoch is its own ledger stream's). The mode gauge lets alerts and dashboards tell the two apart:
 * three replicas saying primary is a split brain in one mode and the normal state in the other.
 */
export function registerRoleGauges(registry: Registry, state: { maySell(): boolean; readonly epoch: number }, mode: ClusterMode): void {
  new Gauge({
    name: `${PREFIX}cluster_mode`,
    help: 'The cluster mode this replica runs (CLUSTER_MODE): 1 for its mode.',
    labelNames: ['mode'],
    registers: [registry],
  })
    .labels(mode)
    .set(1);
  new Gauge({
    name: `${PREFIX}role`,
    help: "This replica's role: 1 for the current one (primary: it may sell now; in allotments mode every replica that may sell).",
    labelNames: ['role'],
    registers: [registry],
    collect() {
      const selling = state.maySell();
      this.labels('primary').set(selling ? 1 : 0);
      this.labels('secondary').set(selling ? 0 : 1);
    },
  });
  new Gauge({
    name: `${PREFIX}epoch`,
    help: 'Epoch (fencing token) of the current term as this replica knows it (allotments mode: its own ledger stream\'s).',
    registers: [registry],
    collect() {
      this.set(state.epoch);
    },
  });
}

export const REQUEST_OUTCOMES = ['sold', 'sold_out', 'not_found', 'unavailable', 'replayed'] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

/** How a ledger batch of sales ended (the group commit's outcome kinds): written, failed (503), unknown (504). */
export const LEDGER_BATCH_OUTCOMES = ['written', 'failed', 'unknown'] as const;
export type LedgerBatchOutcome = (typeof LEDGER_BATCH_OUTCOMES)[number];

const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const BATCH_SALES_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
const LANE_INDEX: Readonly<Record<LaneName, number>> = { db: 0, atomic: 1, signal: 2, lock: 3, redis: 4 };
const OUTCOME_INDEX: Readonly<Record<RequestOutcome, number>> = { sold: 0, sold_out: 1, not_found: 2, unavailable: 3, replayed: 4 };
const BATCH_OUTCOME_INDEX: Readonly<Record<LedgerBatchOutcome, number>> = { written: 0, failed: 1, unknown: 2 };

function bump(tally: Float64Array, at: number, by: number): void {
  tally[at] = (tally[at] ?? 0) + by;
}

type HistogramValue = MetricValue<string> & { metricName: string };

/**
 * A histogram kept as typed-array tallies, one series per label set, turned into prom-client's
 * layout (cumulative buckets, +Inf, sum, count) only at snapshot time: observing allocates nothing.
 */
class HistogramTally {
  /** Per series: one count per bucket (not cumulative) and a last one for +Inf only. */
  private readonly counts: Float64Array;
  private readonly sums: Float64Array;
  /** The histogram's shape (name, help, type) for snapshots; its values are the tallies'. */
  private readonly shape: Histogram<string>;

  constructor(
    private readonly name: string,
    help: string,
    private readonly buckets: readonly number[],
    /** The label set of each series, by index (one empty set for an unlabelled histogram). */
    private readonly series: ReadonlyArray<Readonly<Record<string, string>>>,
  ) {
    this.shape = new Histogram({ name, help, labelNames: Object.keys(series[0] ?? {}), buckets: [...buckets], registers: [] });
    this.counts = new Float64Array(series.length * (buckets.length + 1));
    this.sums = new Float64Array(series.length);
  }

  observe(series: number, value: number): void {
    let bucket = 0;
    while (bucket < this.buckets.length && value > (this.buckets[bucket] as number)) bucket++;
    bump(this.counts, series * (this.buckets.length + 1) + bucket, 1);
    bump(this.sums, series, value);
  }

  async snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    return { ...(await this.shape.get()), values: this.values() };
  }

  private values(): HistogramValue[] {
    const values: HistogramValue[] = [];
    this.series.forEach((labels, s) => {
      const base = s * (this.buckets.length + 1);
      let cumulative = 0;
      this.buckets.forEach((le, b) => {
        cumulative += this.counts[base + b] as number;
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      const count = cumulative + (this.counts[base + this.buckets.length] as number);
      values.push({ labels: { ...labels, le: '+Inf' }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: this.sums[s] as number, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    });
    return values;
  }
}

/**
 * Per-worker request metrics. Counting a request is the hot path's only record, so it is kept to
 * a few writes into typed arrays — no label hashing, no objects — and the tallies become
 * prom-client series only when the supervisor asks for a snapshot (each metric's `collect`).
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly dependencyErrors: Counter<'dependency'>;
  private readonly forwarded: Counter<'outcome'>;
  private readonly outcomes = new Float64Array(LANE_NAMES.length * REQUEST_OUTCOMES.length);
  private readonly unitsSold = new Float64Array(LANE_NAMES.length);
  private readonly soldOut = new Float64Array(LANE_NAMES.length);
  /** Per lane, series by LANE_INDEX order. */
  private readonly duration = new HistogramTally(`${PREFIX}request_duration_seconds`, 'Buy latency by lane, from routing to the answer.', DURATION_BUCKETS, LANE_NAMES.map((lane) => ({ lane })));
  // The group commit's, per batch rather than per request: a batch carries every sale of a worker's turn.
  private readonly ledgerBatches = new Float64Array(LEDGER_BATCH_OUTCOMES.length);
  private readonly ledgerBatchSales = new HistogramTally(`${PREFIX}ledger_batch_sales`, 'Sales per ledger batch (group commit: one insert carries every sale of a worker turn).', BATCH_SALES_BUCKETS, [{}]);
  private readonly ledgerCommitSeconds = new HistogramTally(
    `${PREFIX}ledger_commit_seconds`,
    'Seconds from a ledger batch being cut to its outcome (a number reservation when one is due, and the insert): what a durable buy waits beyond the sale itself.',
    DURATION_BUCKETS,
    [{}],
  );
  private inFlight = 0;
  private admissionRefused = 0;
  /** One listener shared by every response, so tracking a request allocates nothing. */
  private readonly onResponseClosed = (): void => {
    this.inFlight--;
  };

  constructor() {
    const registers = [this.registry];
    const { outcomes, unitsSold, soldOut, ledgerBatches } = this;
    const inFlightNow = (): number => this.inFlight;
    new Counter({
      name: `${PREFIX}requests_total`,
      help: 'Buy requests by lane and outcome.',
      labelNames: ['lane', 'outcome'],
      registers,
      collect() {
        this.reset();
        LANE_NAMES.forEach((lane, l) => REQUEST_OUTCOMES.forEach((outcome, o) => this.labels(lane, outcome).inc(outcomes[l * REQUEST_OUTCOMES.length + o] ?? 0)));
      },
    });
    new Counter({
      name: `${PREFIX}units_sold_total`,
      help: 'Units sold by lane.',
      labelNames: ['lane'],
      registers,
      collect() {
        this.reset();
        LANE_NAMES.forEach((lane, l) => this.labels(lane).inc(unitsSold[l] ?? 0));
      },
    });
    new Counter({
      name: `${PREFIX}sold_out_total`,
      help: 'SKUs that reached zero by lane (counted by the buy that took the last unit).',
      labelNames: ['lane'],
      registers,
      collect() {
        this.reset();
        LANE_NAMES.forEach((lane, l) => this.labels(lane).inc(soldOut[l] ?? 0));
      },
    });
    this.dependencyErrors = new Counter({ name: `${PREFIX}dependency_errors_total`, help: 'Failed or timed-out calls to a dependency.', labelNames: ['dependency'], registers });
    this.forwarded = new Counter({ name: `${PREFIX}forwarded_requests_total`, help: 'Writes forwarded to the primary, by outcome.', labelNames: ['outcome'], registers });
    for (const outcome of ['ok', 'failed']) this.forwarded.labels(outcome).inc(0);
    new Gauge({
      name: `${PREFIX}http_requests_in_flight`,
      help: 'HTTP requests being served.',
      registers,
      collect() {
        this.set(inFlightNow());
      },
    });
    for (const dependency of ['mongo', 'redis']) this.dependencyErrors.labels(dependency).inc(0);
    new Counter({
      name: `${PREFIX}ledger_batches_total`,
      help: 'Ledger batches of sales (DURABILITY=sync) by outcome: written, failed (nothing written, its buyers got 503) or unknown (its buyers got 504; settled in the background).',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        LEDGER_BATCH_OUTCOMES.forEach((outcome, o) => this.labels(outcome).inc(ledgerBatches[o] ?? 0));
      },
    });
    const refusedNow = (): number => this.admissionRefused;
    new Counter({
      name: `${PREFIX}admission_refused_total`,
      help: 'Requests refused (503 overloaded) by the admission gate, before any parsing: ADMISSION_LIMIT requests were in flight on their worker thread.',
      registers,
      collect() {
        this.reset();
        this.inc(refusedNow());
      },
    });
  }

  /** A request refused by the admission gate (a plain count: the gate's refusal must stay cheap). */
  recordAdmissionRefused(): void {
    this.admissionRefused++;
  }

  /** Count `res` as in flight until it closes (answered, or the connection went away). */
  trackInFlight(res: { on(event: 'close', listener: () => void): unknown }): void {
    this.inFlight++;
    res.on('close', this.onResponseClosed);
  }

  recordBuy(lane: LaneName, outcome: RequestOutcome, seconds: number, units: number, remaining: number): void {
    const l = LANE_INDEX[lane];
    bump(this.outcomes, l * REQUEST_OUTCOMES.length + OUTCOME_INDEX[outcome], 1);
    this.duration.observe(l, seconds);
    if (outcome === 'sold') {
      bump(this.unitsSold, l, units);
      if (remaining === 0) bump(this.soldOut, l, 1);
    }
  }

  /** A sales batch of this worker's group commit, once its outcome is known (GroupCommit's `observeBatch`). */
  readonly recordLedgerBatch = (outcome: LedgerBatchOutcome, sales: number, seconds: number): void => {
    bump(this.ledgerBatches, BATCH_OUTCOME_INDEX[outcome], 1);
    this.ledgerBatchSales.observe(0, sales);
    this.ledgerCommitSeconds.observe(0, seconds);
  };

  recordForward(outcome: 'ok' | 'failed'): void {
    this.forwarded.labels(outcome).inc();
  }

  recordDependencyError(dependency: 'mongo' | 'redis'): void {
    this.dependencyErrors.labels(dependency).inc();
  }

  async snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    const [registered, ...histograms] = await Promise.all([this.registry.getMetricsAsJSON(), this.duration.snapshot(), this.ledgerBatchSales.snapshot(), this.ledgerCommitSeconds.snapshot()]);
    return [...registered, ...histograms];
  }
}

export interface StockSource {
  /** The first `limit` SKU names, in creation order. */
  skus(limit: number): string[];
  /** Levels of `skus` in `lane`; SKUs whose level cannot be read are left out. */
  levels(lane: LaneName, skus: readonly string[]): Promise<Map<string, StockLevel>>;
}

/** Process-wide metrics on the main thread, merged with the workers' snapshots at scrape time. */
export class SupervisorMetrics {
  readonly registry = new Registry();

  constructor(options: { stock: StockSource; metricsMaxSkus: number; workers: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool
    // rejects them); the same facts are in superstock_nodejs_active_{handles,requests,resources}.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) this.registry.removeSingleMetric(`${PREFIX}nodejs_${name}`);
    new Gauge({ name: `${PREFIX}workers`, help: 'Worker threads serving HTTP.', registers, collect() { this.set(options.workers()); } });
    const labelNames = ['lane', 'sku'] as const;
    const scope = 'per lane and SKU (first METRICS_MAX_SKUS SKUs)';
    // The three gauges are filled by one read of each store per scrape: every gauge's collect
    // joins the same refresh, which prom-client starts for all metrics at once.
    let refreshing: Promise<void> | null = null;
    const refresh = (): Promise<void> =>
      (refreshing ??= (async () => {
        const skus = options.stock.skus(options.metricsMaxSkus);
        const byLane = await Promise.all(LANE_NAMES.map(async (lane) => [lane, await options.stock.levels(lane, skus)] as const));
        remaining.reset();
        sold.reset();
        initial.reset();
        for (const [lane, levels] of byLane) {
          for (const [sku, level] of levels) {
            remaining.labels(lane, sku).set(level.remaining);
            sold.labels(lane, sku).set(level.sold);
            initial.labels(lane, sku).set(level.initial);
          }
        }
      })().finally(() => (refreshing = null)));
    const remaining = new Gauge({ name: `${PREFIX}stock_remaining`, help: `Units left, ${scope}.`, labelNames, registers, collect: refresh });
    const sold = new Gauge({ name: `${PREFIX}stock_sold`, help: `Units sold, ${scope}.`, labelNames, registers, collect: refresh });
    const initial = new Gauge({ name: `${PREFIX}stock_initial`, help: `Units put on sale, ${scope}.`, labelNames, registers, collect: refresh });
  }

  /** One exposition for the whole replica. */
  async render(workerSnapshots: MetricObjectWithValues<MetricValue<string>>[][]): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([AggregatorRegistry.aggregate(workerSnapshots), this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}
