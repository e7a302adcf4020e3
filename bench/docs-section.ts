/**
 * docs/benchmarks.md is written by two benches: `bench/run.ts` writes the whole page (one
 * replica, lane by lane, with the hand-written analysis), `bench/cluster.ts` writes only the
 * cluster section, between two markers. Each keeps what the other wrote, so `make bench-cluster`
 * alone does not wipe the lane table and a new lane table does not drop the cluster figures.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const BEGIN = '<!-- bench-cluster: begin (written by make bench-cluster; edits here are overwritten) -->';
const END = '<!-- bench-cluster: end -->';

function clusterSectionOf(page: string): string | null {
  const start = page.indexOf(BEGIN);
  const end = page.indexOf(END, start);
  return start === -1 || end === -1 ? null : page.slice(start, end + END.length);
}

/** Writes the lane page to `file`, keeping the cluster section it already held (at the end). */
export function keepClusterSection(file: string, lanePage: string): void {
  const section = existsSync(file) ? clusterSectionOf(readFileSync(file, 'utf8')) : null;
  writeFileSync(file, section === null ? lanePage : `${lanePage.trimEnd()}\n\n${section}\n`);
}

/** Puts `markdown` as the cluster section of `file`, in place of the one there or at the end. */
export function writeClusterSection(file: string, markdown: string): void {
  const page = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const section = `${BEGIN}\n${markdown.trim()}\n${END}`;
  const old = clusterSectionOf(page);
  writeFileSync(file, old === null ? `${page.trimEnd()}\n\n${section}\n` : page.replace(old, section));
}
