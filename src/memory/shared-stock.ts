/**
 * The in-memory stock, laid out in one SharedArrayBuffer that every worker thread maps, so the
 * atomic, lock and signal lanes are real multi-threaded concurrency rather than one event loop
 * taking turns.
 *
 * Layout (all Int32 unless noted):
 *   header   [skuCount, tableMutex, seeded(mongo), seeded(redis), keyBytesUsed, adminHolder,
 *            2 spare]
 *   index    open-addressing hash table, `slot + 1` per entry, 0 = empty; linear probing
 *   keyAt    per slot, where its name starts in the key arena; keyLen Uint8 per slot
 *   keys     the key arena: SKU names (ASCII, ≤ 32 chars) back to back, so a short name costs
 *            its own length, not 32 bytes
 *   lanes    per memory lane, per slot: [remaining, initial] (sold = initial − remaining)
 *   mutexes  per slot, the lock lane's mutex word (the other lanes need none)
 *   dirty    per memory lane, one bit per slot: set by whoever changes a SKU, drained by the
 *            replication publisher, so it never has to scan every SKU to find what changed
 *
 * Every region is sized for MAX_SKUS up front, but the memory behind a SharedArrayBuffer is only
 * made resident as it is first written: an empty table costs next to nothing, and a full one
 * costs what its SKUs use (about 41 bytes each plus their names; docs/benchmarks.md).
 *
 * Slots are never freed, so a slot number, once published, names the same SKU forever and can
 * be cached or passed between threads. A new SKU is published by writing its key and counters
 * first and its index entry last with Atomics.store: a reader that finds the entry with
 * Atomics.load is guaranteed to see the rest.
 */
import { isMainThread } from 'node:worker_threads';
import { MAX_SKU_LENGTH, MEMORY_LANES, type MemoryLaneName } from '../config.js';

export const REMAINING = 0;
/**
 * Units put on sale. `sold` is not stored: it is always `initial − remaining`, so a buy is one
 * atomic write and a level can never show sales that its remaining count does not.
 */
export const INITIAL = 1;
/** Int32 words per SKU per lane. */
export const STRIDE = 2;

const HEADER_WORDS = 8;
const H_COUNT = 0;
const H_TABLE_MUTEX = 1;
const H_KEY_BYTES_USED = 4;
/** Set once the seed SKUs exist in a dependency's store, so every worker's /readyz can tell. */
const H_SEEDED: Readonly<Record<'mongo' | 'redis', number>> = { mongo: 2, redis: 3 };
/** 0, or the id of the worker applying an admin change (memory/admin-lock.ts). */
const H_ADMIN_HOLDER = 5;

export class SkuTableFullError extends Error {
  constructor(capacity: number) {
    super(`the SKU table is full (MAX_SKUS=${capacity})`);
    this.name = 'SkuTableFullError';
  }
}

interface Layout {
  readonly capacity: number;
  readonly indexSize: number;
  readonly bytes: number;
  readonly indexOffset: number;
  readonly keyAtOffset: number;
  readonly lanesOffset: number;
  readonly mutexesOffset: number;
  readonly dirtyOffset: number;
  readonly dirtyWords: number;
  readonly keyLenOffset: number;
  readonly keysOffset: number;
}

function layoutFor(capacity: number): Layout {
  let indexSize = 1;
  while (indexSize < capacity * 2) indexSize <<= 1;
  // Int32 regions first, byte regions last, so every Int32Array view is 4-byte aligned.
  const indexOffset = HEADER_WORDS * 4;
  const keyAtOffset = indexOffset + indexSize * 4;
  const lanesOffset = keyAtOffset + capacity * 4;
  const mutexesOffset = lanesOffset + MEMORY_LANES.length * capacity * STRIDE * 4;
  const dirtyOffset = mutexesOffset + capacity * 4;
  const dirtyWords = Math.ceil(capacity / 32);
  const keyLenOffset = dirtyOffset + MEMORY_LANES.length * dirtyWords * 4;
  const keysOffset = keyLenOffset + capacity;
  const bytes = keysOffset + capacity * MAX_SKU_LENGTH;
  return { capacity, indexSize, bytes, indexOffset, keyAtOffset, lanesOffset, mutexesOffset, dirtyOffset, dirtyWords, keyLenOffset, keysOffset };
}

/** FNV-1a over the UTF-16 code units (SKUs are ASCII, so code units are bytes). */
function hashSku(sku: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < sku.length; i++) {
    h ^= sku.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The same hash over a name's bytes (ASCII: byte = code unit). */
function hashSkuBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A futex-style mutex on one Int32 word (Drepper's "Futexes Are Tricky", mutex 2):
 * 0 = free, 1 = taken, 2 = taken with sleepers. Worker threads sleep with Atomics.wait; the main
 * thread may not block, so there it spins (it only takes locks while seeding, before any worker
 * runs, or for admin work that is rare and short).
 */
export function lockWord(words: Int32Array, at: number): void {
  let c = Atomics.compareExchange(words, at, 0, 1);
  if (c === 0) return;
  if (isMainThread) {
    while (Atomics.compareExchange(words, at, 0, 1) !== 0);
    return;
  }
  if (c !== 2) c = Atomics.exchange(words, at, 2);
  while (c !== 0) {
    Atomics.wait(words, at, 2);
    c = Atomics.exchange(words, at, 2);
  }
}

export function unlockWord(words: Int32Array, at: number): void {
  if (Atomics.sub(words, at, 1) !== 1) {
    Atomics.store(words, at, 0);
    Atomics.notify(words, at, 1);
  }
}

export class SharedStock {
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly index: Int32Array;
  private readonly indexMask: number;
  private readonly keyAt: Int32Array;
  private readonly keyLen: Uint8Array;
  private readonly keys: Uint8Array;
  private readonly laneWords: Readonly<Record<MemoryLaneName, Int32Array>>;
  /** The lock lane's mutex word per slot. */
  readonly mutexes: Int32Array;
  private readonly dirtyBits: Readonly<Record<MemoryLaneName, Int32Array>>;

  /** Allocate a fresh table (main thread), or map one allocated elsewhere (workers). */
  constructor(
    readonly buffer: SharedArrayBuffer,
    capacity: number,
  ) {
    const layout = layoutFor(capacity);
    if (buffer.byteLength !== layout.bytes) throw new Error('shared buffer does not match the SKU capacity');
    this.capacity = capacity;
    this.header = new Int32Array(buffer, 0, HEADER_WORDS);
    this.index = new Int32Array(buffer, layout.indexOffset, layout.indexSize);
    this.indexMask = layout.indexSize - 1;
    this.keyAt = new Int32Array(buffer, layout.keyAtOffset, capacity);
    this.keyLen = new Uint8Array(buffer, layout.keyLenOffset, capacity);
    this.keys = new Uint8Array(buffer, layout.keysOffset, capacity * MAX_SKU_LENGTH);
    this.mutexes = new Int32Array(buffer, layout.mutexesOffset, capacity);
    const laneBytes = capacity * STRIDE * 4;
    const words = (i: number) => new Int32Array(buffer, layout.lanesOffset + i * laneBytes, capacity * STRIDE);
    this.laneWords = { atomic: words(0), lock: words(1), signal: words(2) };
    const dirty = (i: number) => new Int32Array(buffer, layout.dirtyOffset + i * layout.dirtyWords * 4, layout.dirtyWords);
    this.dirtyBits = { atomic: dirty(0), lock: dirty(1), signal: dirty(2) };
  }

  /** Note that `slot` changed in `lane`, for the replication publisher. */
  markDirty(lane: MemoryLaneName, slot: number): void {
    Atomics.or(this.dirtyBits[lane], slot >>> 5, 1 << (slot & 31));
  }

  /** Visit and clear every slot marked dirty in `lane` since the last drain. */
  drainDirty(lane: MemoryLaneName, visit: (slot: number) => void): void {
    const bits = this.dirtyBits[lane];
    for (let i = 0; i < bits.length; i++) {
      if (Atomics.load(bits, i) === 0) continue;
      let word = Atomics.exchange(bits, i, 0);
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word);
        word &= word - 1;
        visit(i * 32 + bit);
      }
    }
  }

  static allocate(capacity: number): SharedStock {
    return new SharedStock(new SharedArrayBuffer(layoutFor(capacity).bytes), capacity);
  }

  get count(): number {
    return Atomics.load(this.header, H_COUNT);
  }

  markSeeded(dependency: 'mongo' | 'redis'): void {
    Atomics.store(this.header, H_SEEDED[dependency], 1);
  }

  /** The store was lost (e.g. a Redis without persistence restarted): seed it again before serving. */
  markUnseeded(dependency: 'mongo' | 'redis'): void {
    Atomics.store(this.header, H_SEEDED[dependency], 0);
  }

  isSeeded(dependency: 'mongo' | 'redis'): boolean {
    return Atomics.load(this.header, H_SEEDED[dependency]) === 1;
  }

  /** Take the replica-wide admin lock for `holder` (non-zero) if it is free. */
  tryLockAdmin(holder: number): boolean {
    return Atomics.compareExchange(this.header, H_ADMIN_HOLDER, 0, holder) === 0;
  }

  /** Free the admin lock if `holder` has it (also how the supervisor frees a dead worker's). */
  unlockAdmin(holder: number): void {
    Atomics.compareExchange(this.header, H_ADMIN_HOLDER, holder, 0);
  }

  /** The counters of one lane; a SKU's words start at `slot * STRIDE`. */
  words(lane: MemoryLaneName): Int32Array {
    return this.laneWords[lane];
  }

  /** The slot of `sku`, or -1. Lock-free: runs on every buy. */
  slotOf(sku: string): number {
    return this.slotWithHash(sku, hashSku(sku));
  }

  private slotWithHash(sku: string, hash: number): number {
    let i = hash & this.indexMask;
    for (;;) {
      const entry = Atomics.load(this.index, i);
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.keyEquals(slot, sku)) return slot;
      i = (i + 1) & this.indexMask;
    }
  }

  skuAt(slot: number): string {
    const len = this.keyLen[slot] ?? 0;
    const start = this.keyAt[slot] ?? 0;
    return String.fromCharCode(...this.keys.subarray(start, start + len));
  }

  /**
   * Find or create `sku`; a new SKU starts with `stock` in every memory lane. Returns the slot and
   * whether it was created. Creation is serialised by the table mutex; lookups never wait for it.
   */
  ensure(sku: string, stock: number): { slot: number; created: boolean } {
    // Hashed once: a bulk load of a million SKUs spends a good part of its time here.
    const hash = hashSku(sku);
    const found = this.slotWithHash(sku, hash);
    if (found >= 0) return { slot: found, created: false };
    lockWord(this.header, H_TABLE_MUTEX);
    try {
      const again = this.slotWithHash(sku, hash);
      if (again >= 0) return { slot: again, created: false };
      return { slot: this.insertLocked(sku, 0, sku.length, hash, stock), created: true };
    } finally {
      unlockWord(this.header, H_TABLE_MUTEX);
    }
  }

  /**
   * Add a name known to be absent, under the table mutex: `name` as a string, or as bytes
   * `name[start..end)`. Its key and counters are written first, its index entry last.
   */
  private insertLocked(name: string | Uint8Array, start: number, end: number, hash: number, stock: number): number {
    const slot = Atomics.load(this.header, H_COUNT);
    if (slot >= this.capacity) throw new SkuTableFullError(this.capacity);
    const length = end - start;
    const keyStart = Atomics.load(this.header, H_KEY_BYTES_USED);
    if (typeof name === 'string') for (let c = 0; c < length; c++) this.keys[keyStart + c] = name.charCodeAt(start + c);
    else for (let c = 0; c < length; c++) this.keys[keyStart + c] = name[start + c] as number;
    Atomics.store(this.header, H_KEY_BYTES_USED, keyStart + length);
    this.keyAt[slot] = keyStart;
    this.keyLen[slot] = length;
    for (const lane of MEMORY_LANES) {
      const w = this.laneWords[lane];
      const base = slot * STRIDE;
      Atomics.store(w, base + REMAINING, stock);
      Atomics.store(w, base + INITIAL, stock);
      this.markDirty(lane, slot);
    }
    let i = hash & this.indexMask;
    while (Atomics.load(this.index, i) !== 0) i = (i + 1) & this.indexMask;
    Atomics.store(this.header, H_COUNT, slot + 1);
    Atomics.store(this.index, i, slot + 1);
    return slot;
  }

  /**
   * `ensure` for a name given as bytes (`bytes[start..end)`, a valid SKU): whether it was created.
   * A bulk load of a million SKUs makes no string for a name the table does not have yet.
   */
  createFromBytes(bytes: Uint8Array, start: number, end: number, stock: number): boolean {
    const hash = hashSkuBytes(bytes, start, end);
    if (this.slotOfBytes(bytes, start, end, hash) >= 0) return false;
    lockWord(this.header, H_TABLE_MUTEX);
    try {
      if (this.slotOfBytes(bytes, start, end, hash) >= 0) return false;
      this.insertLocked(bytes, start, end, hash, stock);
      return true;
    } finally {
      unlockWord(this.header, H_TABLE_MUTEX);
    }
  }

  private slotOfBytes(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const length = end - start;
    let i = hash & this.indexMask;
    for (;;) {
      const entry = Atomics.load(this.index, i);
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.keyLen[slot] === length) {
        const at = this.keyAt[slot] ?? 0;
        let c = 0;
        while (c < length && this.keys[at + c] === bytes[start + c]) c++;
        if (c === length) return slot;
      }
      i = (i + 1) & this.indexMask;
    }
  }

  private keyEquals(slot: number, sku: string): boolean {
    if (this.keyLen[slot] !== sku.length) return false;
    const start = this.keyAt[slot] ?? 0;
    for (let c = 0; c < sku.length; c++) {
      if (this.keys[start + c] !== sku.charCodeAt(c)) return false;
    }
    return true;
  }
}
