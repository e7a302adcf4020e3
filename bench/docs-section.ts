/**
 * docs/benchmarks.md is written by three benches: `bench/run.ts` writes the whole page (one
 * replica, lane by lane, with the hand-written analysis); `bench/cluster.ts` and `bench/flood.ts`
 * each write only a section of their own, between two markers. Each keeps what the others wrote,
 * so `make bench-cluster` alone does not wipe the lane table and a new lane table does not drop
 * the cluster or flood figures.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** The sections other benches own, in the order a new lane page puts them back. */
export const SECTIONS = ['bench-cluster', 'bench-flood'] as const;
export type Section = (typeof SECTIONS)[number];

const begin = (name: Section) => `<!-- ${name}: begin (written by make ${name}; edits here are overwritten) -->`;
const end = (name: Section) => `<!-- ${name}: end -->`;

function sectionOf(page: string, name: Section): string | null {
  const start = page.indexOf(begin(name));
  const stop = page.indexOf(end(name), start);
  return start === -1 || stop === -1 ? null : page.slice(start, stop + end(name).length);
}

/** Writes the lane page to `file`, keeping every section it already held (at the end). */
export function keepSections(file: string, lanePage: string): void {
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const kept = SECTIONS.map((name) => sectionOf(old, name)).filter((s): s is string => s !== null);
  writeFileSync(file, kept.length === 0 ? lanePage : `${lanePage.trimEnd()}\n\n${kept.join('\n\n')}\n`);
}

/** Puts `markdown` as section `name` of `file`, in place of the one there or at the end. */
export function writeSection(file: string, name: Section, markdown: string): void {
  const page = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const section = `${begin(name)}\n${markdown.trim()}\n${end(name)}`;
  const old = sectionOf(page, name);
  writeFileSync(file, old === null ? `${page.trimEnd()}\n\n${section}\n` : page.replace(old, section));
}
