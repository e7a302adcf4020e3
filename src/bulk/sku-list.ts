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

/**
 * A sink that takes a name as bytes where they lie (`bytes[start..end)`, ASCII), so the usual
 * line costs no string at all; lines of another shape still arrive through `add`.
 */
export interface SkuBytesSink {
  add(sku: string, stock: number): void;
  addBytes(bytes: Uint8Array, start: number, end: number, stock: number): void;
}

export interface SkuListVerdict {
  /** Valid entries seen. */
  readonly count: number;
  /** The first bad lines, in order; empty when the whole list is valid. */
  readonly errors: readonly SkuListError[];
  /** Every bad line, described or not. */
  readonly errorCount: number;
}

/**
 * Entries per staging block: 2^20, so a block (32 MiB of name room and 8 MiB of numbers) is
 * larger than any threshold below which the C allocator would carve it from a thread's heap.
 * It is therefore mapped on its own: only the pages written become resident (names are short),
 * and release() returns it to the system whole. Smaller pieces, once freed, stayed resident in
 * the worker's heap (a million SKUs loaded left 20–35 MiB behind).
 */
const BLOCK_ENTRIES = 1 << 20;

interface StagingBlock {
  /** The one allocation behind the three views, so it goes back to the system in one piece. */
  readonly memory: ArrayBuffer;
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
export class StagedSkus implements SkuBytesSink {
  private readonly blocks: StagingBlock[] = [];
  private size = 0;
  private readonly nameBytes: number;

  /** @param blockEntries entries per block (tests make it small to cross blocks). */
  constructor(private readonly blockEntries = BLOCK_ENTRIES) {
    this.nameBytes = blockEntries * MAX_SKU_LENGTH;
  }

  get count(): number {
    return this.size;
  }

  add(sku: string, stock: number): void {
    const block = this.blockWithRoom();
    block.namesUsed += block.names.write(sku, block.namesUsed, 'latin1');
    this.close(block, stock);
  }

  addBytes(bytes: Uint8Array, start: number, end: number, stock: number): void {
    const block = this.blockWithRoom();
    const { names } = block;
    let at = block.namesUsed;
    for (let i = start; i < end; i++) names[at++] = bytes[i] as number;
    block.namesUsed = at;
    this.close(block, stock);
  }

  /**
   * Entries `from` to `to` (exclusive) handed to `visit` with each name's bytes where they lie
   * (`names[start..end)`), so a store that can take bytes makes no string per entry.
   */
  each(from: number, to: number, visit: (names: Uint8Array, start: number, end: number, stock: number) => void): void {
    for (let i = from; i < Math.min(to, this.size); i++) {
      const block = this.blocks[Math.floor(i / this.blockEntries)] as StagingBlock;
      const at = i % this.blockEntries;
      visit(block.names, at === 0 ? 0 : (block.ends[at - 1] as number), block.ends[at] as number, block.stocks[at] as number);
    }
  }

  private blockWithRoom(): StagingBlock {
    let block = this.blocks.at(-1);
    if (!block || block.size === this.blockEntries) {
      // One allocation per block, its own (not Node's pool): see BLOCK_ENTRIES.
      const entries = this.blockEntries;
      const memory = new ArrayBuffer(this.nameBytes + 2 * entries * 4);
      block = {
        memory,
        names: Buffer.from(memory, 0, this.nameBytes),
        namesUsed: 0,
        ends: new Int32Array(memory, this.nameBytes, entries),
        stocks: new Int32Array(memory, this.nameBytes + entries * 4, entries),
        size: 0,
      };
      this.blocks.push(block);
    }
    return block;
  }

  private close(block: StagingBlock, stock: number): void {
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
    for (const block of this.blocks) block.memory.transfer(0);
    this.blocks.length = 0;
    this.size = 0;
  }

  /** Every block but the last is full, so entry i is in block i / blockEntries. */
  private locate(i: number): { block: StagingBlock; at: number } {
    const block = this.blocks[Math.floor(i / this.blockEntries)];
    if (!block || i < 0 || i >= this.size) throw new RangeError(`no staged entry ${i}`);
    return { block, at: i % this.blockEntries };
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
  /** Where the fast path found the name: [start, end). */
  private readonly name: [number, number] = [0, 0];

  constructor(
    private readonly format: SkuListFormat,
    private readonly maxSkus: number,
    private readonly sink: SkuSink | SkuBytesSink,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const from = start;
      start = nl + 1;
      if (this.skipping) {
        this.skipping = false;
        this.pending = null;
        continue;
      }
      // A line inside the chunk is read where it lies (no view object per line).
      if (this.pending) {
        const whole = Buffer.concat([this.pending, chunk.subarray(from, nl)]);
        this.pending = null;
        this.take(whole, 0, whole.length);
      } else {
        this.take(chunk, from, nl);
      }
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
    if (this.pending && !this.skipping) this.take(this.pending, 0, this.pending.length);
    this.pending = null;
    return { count: this.count, errors: this.errors, errorCount: this.errorCount };
  }

  /** The line `bytes[from..to)` (without its newline). */
  private take(bytes: Buffer, from: number, to: number): void {
    const line = ++this.line;
    if (to - from > MAX_LINE_BYTES) return this.fail(line, `longer than ${MAX_LINE_BYTES} bytes`);
    // The usual line, read from its bytes: no string, no match object. Any other line, valid or
    // not, takes the general path below, which decides exactly as before.
    const stock = this.format === 'ndjson' ? scanCompactJsonLine(bytes, from, to, this.name) : scanCsvLine(bytes, from, to, this.name);
    if (stock >= 0) {
      if (this.count >= this.maxSkus) return this.fail(line, `more than ${this.maxSkus} SKUs (MAX_SKUS)`);
      this.count++;
      if (this.errorCount > 0) return;
      const start = this.name[0];
      const end = this.name[1];
      if (typeof this.sink === 'function') this.sink(bytes.toString('latin1', start, end), stock);
      else this.sink.addBytes(bytes, start, end, stock);
      return;
    }
    const text = bytes.toString('latin1', from, to).trim();
    if (text === '') return;
    if (this.format === 'csv' && line === 1 && text.replace(/\s/g, '').toLowerCase() === 'sku,stock') return;
    const entry = this.format === 'ndjson' ? parseJsonLine(text) : parseCsvLine(text);
    if (typeof entry === 'string') return this.fail(line, entry);
    if (this.count >= this.maxSkus) return this.fail(line, `more than ${this.maxSkus} SKUs (MAX_SKUS)`);
    this.count++;
    if (this.errorCount > 0) return;
    if (typeof this.sink === 'function') this.sink(entry.sku, entry.stock);
    else this.sink.add(entry.sku, entry.stock);
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

// --- The fast path: the usual line, read from its bytes ---------------------------------------

const QUOTE = 0x22;
const COMMA = 0x2c;
const CR = 0x0d;
const DOT = 0x2e;
const COMPACT_JSON_HEAD = Buffer.from('{"sku":"', 'latin1');
const COMPACT_JSON_MIDDLE = Buffer.from('","stock":', 'latin1');
const CLOSE_BRACE = 0x7d;

/** A-Z a-z 0-9 . _ - (what SKU_PATTERN allows), by byte. */
const SKU_BYTE = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-') SKU_BYTE[c.charCodeAt(0)] = 1;

function startsWithAt(bytes: Uint8Array, at: number, to: number, expected: Uint8Array): boolean {
  if (at + expected.length > to) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[at + i] !== expected[i]) return false;
  return true;
}

/** A valid SKU name at bytes[start..]: its end, or -1. */
function skuEnd(bytes: Uint8Array, start: number, limit: number): number {
  let i = start;
  while (i < limit && i - start < MAX_SKU_LENGTH && SKU_BYTE[bytes[i] as number] === 1) i++;
  if (i === start || bytes[start] === DOT) return -1;
  return i;
}

/** Digits at bytes[start..end) as a stock within MAX_STOCK, or -1. */
function stockOf(bytes: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 10) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (bytes[i] as number) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= MAX_STOCK ? value : -1;
}

/** The end of the line `bytes[from..to)` without a trailing CR. */
function contentEnd(bytes: Uint8Array, from: number, to: number): number {
  return to > from && bytes[to - 1] === CR ? to - 1 : to;
}

/**
 * `{"sku":"NAME","stock":DIGITS}` exactly (a CR at the end allowed): its stock, with the name's
 * place in `name`; -1 for any other line (which the general path then reads).
 */
function scanCompactJsonLine(bytes: Uint8Array, from: number, to: number, name: [number, number]): number {
  const end = contentEnd(bytes, from, to);
  if (!startsWithAt(bytes, from, end, COMPACT_JSON_HEAD) || bytes[end - 1] !== CLOSE_BRACE) return -1;
  const start = from + COMPACT_JSON_HEAD.length;
  const nameEnd = skuEnd(bytes, start, end);
  if (nameEnd < 0 || bytes[nameEnd] !== QUOTE || !startsWithAt(bytes, nameEnd, end, COMPACT_JSON_MIDDLE)) return -1;
  const stock = stockOf(bytes, nameEnd + COMPACT_JSON_MIDDLE.length, end - 1);
  if (stock < 0) return -1;
  name[0] = start;
  name[1] = nameEnd;
  return stock;
}

/** `NAME,DIGITS` exactly (a CR at the end allowed): its stock, with the name's place; else -1. */
function scanCsvLine(bytes: Uint8Array, from: number, to: number, name: [number, number]): number {
  const end = contentEnd(bytes, from, to);
  const nameEnd = skuEnd(bytes, from, end);
  if (nameEnd < 0 || nameEnd >= end || bytes[nameEnd] !== COMMA) return -1;
  const stock = stockOf(bytes, nameEnd + 1, end);
  if (stock < 0) return -1;
  name[0] = from;
  name[1] = nameEnd;
  return stock;
}
