/**
 * Bulk SKU lists — what `SEED_FILE` and `POST /v2/admin/skus:bulk` read — checked line by line
 * before anything is applied, so a bad list changes nothing and its author learns every bad line's
 * number. Two formats, one SKU per line:
 *   ndjson  {"sku":"PS5","stock":500}        (blank lines are skipped)
 *   csv     PS5,500                          (an optional first line `sku,stock` is a header)
 * A SKU listed twice takes its last stock, as the same PUTs one by one would leave it.
 *
 * Each valid entry goes to a sink: StagedSkus, which holds a list compactly until it is known to
 * be valid — names back to back in one byte buffer, stocks in an Int32Array, both outside the JS
 * heap, so a million SKUs cost about 15 MB instead of a million objects — or, at start-up, the
 * table itself.
 */
import { MAX_SKU_LENGTH, MAX_STOCK, SKU_PATTERN } from '../config.js';

export const SKU_LIST_FORMATS = ['ndjson', 'csv'] as const;
export type SkuListFormat = (typeof SKU_LIST_FORMATS)[number];

/** A line longer than this cannot be a valid entry; it is refused without being buffered further. */
const MAX_LINE_BYTES = 1024;
/** How many bad lines are described; the rest are only counted. */
const MAX_REPORTED_ERRORS = 20;
const NEWLINE = 0x0a;

export interface SkuListError {
  readonly line: number;
  readonly message: string;
}

/** Receives each valid entry, in list order, until the first bad line. */
export type SkuSink = (sku: string, stock: number) => void;

export interface SkuListVerdict {
  /** Valid entries seen. */
  readonly count: number;
  /** The first bad lines, in order; empty when the whole list is valid. */
  readonly errors: readonly SkuListError[];
  /** Every bad line, described or not. */
  readonly errorCount: number;
}

/** Entries per staging block. */
const BLOCK_ENTRIES = 16_384;
/** Room for every name of a block at the longest, so a block is only ever closed full. */
const BLOCK_NAME_BYTES = BLOCK_ENTRIES * MAX_SKU_LENGTH;

interface StagingBlock {
  readonly names: Buffer<ArrayBuffer>;
  namesUsed: number;
  /** Where each entry's name ends in `names`. */
  readonly ends: Int32Array<ArrayBuffer>;
  readonly stocks: Int32Array<ArrayBuffer>;
  size: number;
}

/**
 * Valid entries, in list order, stored off the JS heap in fixed blocks that are filled and never
 * copied (a doubling array would leave its old copies behind as garbage at every growth).
 */
export class StagedSkus {
  private readonly blocks: StagingBlock[] = [];
  private size = 0;

  get count(): number {
    return this.size;
  }

  add(sku: string, stock: number): void {
    let block = this.blocks.at(-1);
    if (!block || block.size === BLOCK_ENTRIES) {
      // Own buffers (not Node's pool), so release() can give their memory back at once.
      block = { names: Buffer.from(new ArrayBuffer(BLOCK_NAME_BYTES)), namesUsed: 0, ends: new Int32Array(BLOCK_ENTRIES), stocks: new Int32Array(BLOCK_ENTRIES), size: 0 };
      this.blocks.push(block);
    }
    block.namesUsed += block.names.write(sku, block.namesUsed, 'latin1');
    block.ends[block.size] = block.namesUsed;
    block.stocks[block.size] = stock;
    block.size++;
    this.size++;
  }

  sku(i: number): string {
    const { block, at } = this.locate(i);
    return block.names.toString('latin1', at === 0 ? 0 : block.ends[at - 1], block.ends[at]);
  }

  stock(i: number): number {
    const { block, at } = this.locate(i);
    return block.stocks[at] ?? 0;
  }

  /** Entries `from` to `to` (exclusive) as [sku, stock] pairs, for stores that take a batch. */
  slice(from: number, to: number): Array<readonly [string, number]> {
    const out: Array<readonly [string, number]> = [];
    for (let i = from; i < Math.min(to, this.size); i++) out.push([this.sku(i), this.stock(i)]);
    return out;
  }

  /**
   * Free the staged list now (it is empty afterwards). Its blocks are off-heap memory that the
   * garbage collector would free only at its next full collection — which an idle replica may not
   * run for a long time, keeping a list's worth of memory resident after it was applied.
   */
  release(): void {
    for (const block of this.blocks) {
      block.names.buffer.transfer(0);
      block.ends.buffer.transfer(0);
      block.stocks.buffer.transfer(0);
    }
    this.blocks.length = 0;
    this.size = 0;
  }

  /** Every block but the last is full, so entry i is in block i / BLOCK_ENTRIES. */
  private locate(i: number): { block: StagingBlock; at: number } {
    const block = this.blocks[Math.floor(i / BLOCK_ENTRIES)];
    if (!block || i < 0 || i >= this.size) throw new RangeError(`no staged entry ${i}`);
    return { block, at: i % BLOCK_ENTRIES };
  }
}

/** Feed a list chunk by chunk (a request body, a file read), then `end()` for the verdict. */
export class SkuListParser {
  private count = 0;
  private readonly errors: SkuListError[] = [];
  private errorCount = 0;
  private line = 0;
  /** The start of a line that the last chunk cut off. */
  private pending: Buffer | null = null;
  /** The current line is already too long: skip to its end. */
  private skipping = false;

  constructor(
    private readonly format: SkuListFormat,
    private readonly maxSkus: number,
    private readonly sink: SkuSink,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        this.pending = null;
        continue;
      }
      const whole = this.pending ? Buffer.concat([this.pending, piece]) : piece;
      this.pending = null;
      this.take(whole);
    }
    if (start < chunk.length && !this.skipping) {
      const rest = chunk.subarray(start);
      this.pending = this.pending ? Buffer.concat([this.pending, rest]) : Buffer.from(rest);
      if (this.pending.length > MAX_LINE_BYTES) {
        this.fail(this.line + 1, `longer than ${MAX_LINE_BYTES} bytes`);
        this.line++;
        this.pending = null;
        this.skipping = true;
      }
    }
  }

  end(): SkuListVerdict {
    if (this.pending && !this.skipping) this.take(this.pending);
    this.pending = null;
    return { count: this.count, errors: this.errors, errorCount: this.errorCount };
  }

  private take(bytes: Buffer): void {
    const line = ++this.line;
    if (bytes.length > MAX_LINE_BYTES) return this.fail(line, `longer than ${MAX_LINE_BYTES} bytes`);
    const text = bytes.toString('latin1').trim();
    if (text === '') return;
    if (this.format === 'csv' && line === 1 && text.replace(/\s/g, '').toLowerCase() === 'sku,stock') return;
    const entry = this.format === 'ndjson' ? parseJsonLine(text) : parseCsvLine(text);
    if (typeof entry === 'string') return this.fail(line, entry);
    if (this.count >= this.maxSkus) return this.fail(line, `more than ${this.maxSkus} SKUs (MAX_SKUS)`);
    this.count++;
    if (this.errorCount === 0) this.sink(entry.sku, entry.stock);
  }

  private fail(line: number, message: string): void {
    this.errorCount++;
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push({ line, message });
  }
}

/** An entry, or what is wrong with it. */
function checked(sku: unknown, stock: unknown): { sku: string; stock: number } | string {
  if (typeof sku !== 'string' || !SKU_PATTERN.test(sku)) return `"sku" must be 1-${MAX_SKU_LENGTH} characters of A-Z a-z 0-9 . _ -`;
  if (typeof stock !== 'number' || !Number.isInteger(stock) || stock < 0 || stock > MAX_STOCK) return `"stock" must be an integer from 0 to ${MAX_STOCK}`;
  return { sku, stock };
}

/** The shape nearly every line has, read without building an object; anything else goes to JSON.parse. */
const CANONICAL_JSON_LINE = /^\{\s*"sku"\s*:\s*"([A-Za-z0-9._-]{1,32})"\s*,\s*"stock"\s*:\s*(\d{1,10})\s*\}$/;

function parseJsonLine(text: string): { sku: string; stock: number } | string {
  const canonical = CANONICAL_JSON_LINE.exec(text);
  if (canonical) return checked(canonical[1], Number(canonical[2]));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a JSON object {"sku": …, "stock": …}';
  const extra = Object.keys(value).filter((k) => k !== 'sku' && k !== 'stock');
  if (extra.length > 0) return `unknown field(s): ${extra.join(', ')}`;
  const { sku, stock } = value as { sku?: unknown; stock?: unknown };
  return checked(sku, stock);
}

const CSV_STOCK = /^\d{1,10}$/;

function parseCsvLine(text: string): { sku: string; stock: number } | string {
  const fields = text.split(',');
  if (fields.length !== 2) return 'must be two fields: sku,stock';
  const [sku = '', stock = ''] = fields.map((f) => f.trim());
  if (!CSV_STOCK.test(stock)) return `"stock" must be an integer from 0 to ${MAX_STOCK}`;
  return checked(sku, Number(stock));
}
