/**
 * The end of an event-loop turn, for the work a worker thread gathers over one turn and sends as
 * one batch: the group commit's ledger batch, keyed buys' idempotency claims, the signal lane's
 * hand-offs. Normally that is the check phase (`setImmediate`), right after the turn's I/O
 * callbacks, so everything parsed in one turn travels together.
 *
 * Under a flood the check phase can be a second or more away. When epoll reports a full array of
 * 1,024 ready descriptors, libuv polls again without leaving the poll phase, up to 48 times
 * (`uv__io_poll` in libuv's src/unix/linux.c): with a couple of thousand connections that send
 * again as soon as they are answered, one thread answers up to ~49,000 requests before any
 * `setImmediate` callback or timer runs. The sales it admitted meanwhile sit decided in memory,
 * their batch not yet sent, holding every admission slot, while the thread answers refusals: a
 * primary with one worker thread (`make cluster`, or a pod whose CPU limit gives it one) admitted
 * ~100 buys/s under the flood bench, one ADMISSION_LIMIT's worth per poll phase, against
 * thousands with two threads sharing the connections (bench/FLOOD-ANALYSIS.md).
 *
 * So the admission gate runs `flushNow()` whenever it refuses: a refusal means this thread serves
 * all it may at once, so what was gathered cannot grow by waiting, and sending it is what frees
 * the slots. A flush run early is simply a turn that ended sooner; the `setImmediate` already
 * scheduled then finds nothing left to do. Until that check phase comes the thread counts as
 * `saturated`: the group commit then reserves batch numbers ahead even for a lone batch, since under
 * a flood each round trip waits behind a sweep of ready sockets.
 */
export class TurnEnd {
  private due: Array<() => void> = [];
  private scheduled = false;
  private broughtForward = false;

  /**
   * True from a `flushNow()` until the next check phase: the thread is refusing work, so batches
   * follow one another (the group commit then reserves batch numbers ahead, saving a round trip).
   */
  get saturated(): boolean {
    return this.broughtForward;
  }

  /**
   * Run `flush` at the end of this turn, or at the next `flushNow()` if that comes first. A batcher
   * schedules itself once per batch (its own flag says whether it already has), not per item.
   */
  schedule(flush: () => void): void {
    this.due.push(flush);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.endOfTurn);
    }
  }

  /** The thread is saturated (the admission gate refused): run every flush scheduled so far, now, in order. */
  flushNow(): void {
    this.broughtForward = true;
    this.runDue();
  }

  private runDue(): void {
    if (this.due.length === 0) return;
    const due = this.due;
    this.due = [];
    for (const flush of due) flush();
  }

  private readonly endOfTurn = (): void => {
    this.scheduled = false;
    this.broughtForward = false;
    this.runDue();
  };
}
