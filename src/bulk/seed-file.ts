/**
 * SEED_FILE: a SKU list read at start-up, before any worker serves, straight into the shared
 * table — the bulk path for a catalogue known in advance. The format follows the file's extension
 * (`.csv`, or `.ndjson` / `.jsonl`). A bad line stops the start with every bad line's number (the
 * process exits, so nothing half-loaded is ever served). Entries go into the table as they are
 * read, with nothing kept on the side; MongoDB and Redis, which are seeded in the background and
 * may be down at start, read the file again in chunks.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { SKU_CHUNK } from './apply-skus.js';
import { SkuListParser, type SkuListFormat, type SkuListVerdict, type SkuSink } from './sku-list.js';

export class SeedFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`SEED_FILE ${file}: ${message}`);
    this.name = 'SeedFileError';
  }
}

function formatOf(file: string): SkuListFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.ndjson' || ext === '.jsonl') return 'ndjson';
  throw new SeedFileError(file, 'the name must end in .csv, .ndjson or .jsonl');
}

function verdict(file: string, { count, errors, errorCount }: SkuListVerdict): number {
  if (errorCount === 0) return count;
  const listed = errors.map((e) => `line ${e.line}: ${e.message}`).join('; ');
  throw new SeedFileError(file, `${errorCount} bad line(s) — ${listed}${errorCount > errors.length ? '; …' : ''}`);
}

/** Read the whole file, handing each entry to `sink`; returns how many. Throws SeedFileError. */
export function readSeedFile(file: string, maxSkus: number, sink: SkuSink): number {
  const parser = new SkuListParser(formatOf(file), maxSkus, sink);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw new SeedFileError(file, error instanceof Error ? error.message : String(error));
  }
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let read = readSync(fd, chunk); read > 0; read = readSync(fd, chunk)) parser.push(chunk.subarray(0, read));
  } finally {
    closeSync(fd);
  }
  return verdict(file, parser.end());
}

/** Read the file again, handing its entries over SKU_CHUNK at a time, each batch awaited. */
export async function readSeedFileInChunks(file: string, maxSkus: number, onChunk: (entries: Array<readonly [string, number]>) => Promise<void>): Promise<void> {
  let batch: Array<readonly [string, number]> = [];
  const parser = new SkuListParser(formatOf(file), maxSkus, (sku, stock) => batch.push([sku, stock]));
  for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
    parser.push(chunk as Buffer);
    if (batch.length >= SKU_CHUNK) {
      const full = batch;
      batch = [];
      await onChunk(full);
    }
  }
  verdict(file, parser.end());
  if (batch.length > 0) await onChunk(batch);
}
