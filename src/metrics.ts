/**
 * The metric catalogue. Request metrics are counted by each worker in its own registry (nothing
 * is logged per request; counting is the record); the main thread merges the workers' snapshots
 * with prom-client's aggregator and adds what is process-wide — Node's default metrics and the
 * stock gauges, read straight from shared memory and the lanes' stores — so a scrape of
 * METRICS_PORT sees one replica, not N workers.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { LaneName } from './config.js';
import { LANE_NAMES } from './config.js';
import type { StockLevel } from './lanes/lane.js';

export const PREFIX = 'superstock_';

export const REQUEST_OUTCOMES = ['sold', 'sold_out', 'not_found', 'unavailable', 'replayed'] as const;
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number];

interface Child {
  inc(value?: number): void;
}

interface LaneChildren {
  readonly outcomes: Record<RequestOutcome, Child>;
  readonly duration: { observe(value: number): void };
  readonly unitsSold: Child;
  readonly soldOut: Child;
}

/** Per-worker request metrics. Children are resolved once per lane so the hot path does no label lookups. */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'lane' | 'outcome'>;
  private readonly duration: Histogram<'lane'>;
  private readonly unitsSold: Counter<'lane'>;
  private readonly soldOut: Counter<'lane'>;
  private readonly dependencyErrors: Counter<'dependency'>;
  /** Requests being served right now: what a graceful shutdown waits for. */
  readonly inFlight: Gauge;
  private readonly forwarded: Counter<'outcome'>;
  /** Children resolved once, so counting a buy does no label hashing. */
  private readonly byLane = new Map<LaneName, LaneChildren>();

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({ name: `${PREFIX}requests_total`, help: 'Buy requests by lane and outcome.', labelNames: ['lane', 'outcome'], registers });
    this.duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: 'Buy latency by lane, from routing to the answer.',
      labelNames: ['lane'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.unitsSold = new Counter({ name: `${PREFIX}units_sold_total`, help: 'Units sold by lane.', labelNames: ['lane'], registers });
    this.soldOut = new Counter({ name: `${PREFIX}sold_out_total`, help: 'SKUs that reached zero by lane (counted by the buy that took the last unit).', labelNames: ['lane'], registers });
    this.dependencyErrors = new Counter({ name: `${PREFIX}dependency_errors_total`, help: 'Failed or timed-out calls to a dependency.', labelNames: ['dependency'], registers });
    this.forwarded = new Counter({ name: `${PREFIX}forwarded_requests_total`, help: 'Writes forwarded to the primary, by outcome.', labelNames: ['outcome'], registers });
    for (const outcome of ['ok', 'failed']) this.forwarded.labels(outcome).inc(0);
    this.inFlight = new Gauge({ name: `${PREFIX}http_requests_in_flight`, help: 'HTTP requests being served.', registers });
    for (const lane of LANE_NAMES) {
      const outcomes = {} as Record<RequestOutcome, Child>;
      for (const outcome of REQUEST_OUTCOMES) outcomes[outcome] = this.requests.labels(lane, outcome);
      this.byLane.set(lane, { outcomes, duration: this.duration.labels(lane), unitsSold: this.unitsSold.labels(lane), soldOut: this.soldOut.labels(lane) });
      this.unitsSold.labels(lane).inc(0);
      this.soldOut.labels(lane).inc(0);
    }
    for (const dependency of ['mongo', 'redis']) this.dependencyErrors.labels(dependency).inc(0);
  }

  recordBuy(lane: LaneName, outcome: RequestOutcome, seconds: number, units: number, remaining: number): void {
    const children = this.byLane.get(lane);
    if (!children) return;
    children.outcomes[outcome].inc();
    children.duration.observe(seconds);
    if (outcome === 'sold') {
      children.unitsSold.inc(units);
      if (remaining === 0) children.soldOut.inc();
    }
  }

  recordForward(outcome: 'ok' | 'failed'): void {
    this.forwarded.labels(outcome).inc();
  }

  recordDependencyError(dependency: 'mongo' | 'redis'): void {
    this.dependencyErrors.labels(dependency).inc();
  }

  snapshot(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return this.registry.getMetricsAsJSON();
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
