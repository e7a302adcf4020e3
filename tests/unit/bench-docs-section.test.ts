/**
 * docs/benchmarks.md has three writers: the lane bench writes the page, the cluster and flood
 * benches their sections. None may drop what another wrote (pure file logic, on a temporary file).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepSections, writeSection } from '../../bench/docs-section.js';

const page = () => join(mkdtempSync(join(tmpdir(), 'superstock-docs-')), 'benchmarks.md');

test('the cluster section is added at the end, then replaced in place, never duplicated', () => {
  const file = page();
  writeFileSync(file, '# Benchmarks\n\nlane table\n');
  writeSection(file, 'bench-cluster', '## Cluster\n\nfirst run\n');
  writeSection(file, 'bench-cluster', '## Cluster\n\nsecond run\n');
  const text = readFileSync(file, 'utf8');
  expect(text.startsWith('# Benchmarks\n\nlane table\n')).toBe(true);
  expect(text).toContain('second run');
  expect(text).not.toContain('first run');
  expect(text.match(/## Cluster/g)).toHaveLength(1);
});

test('the flood section is written beside the cluster section; rewriting one leaves the other as it was', () => {
  const file = page();
  writeFileSync(file, '# Benchmarks\n\nlane table\n');
  writeSection(file, 'bench-cluster', '## Cluster\n\ncluster run\n');
  writeSection(file, 'bench-flood', '## Flood\n\nfirst flood\n');
  writeSection(file, 'bench-cluster', '## Cluster\n\ncluster again\n');
  writeSection(file, 'bench-flood', '## Flood\n\nsecond flood\n');
  const text = readFileSync(file, 'utf8');
  expect(text).toContain('cluster again');
  expect(text).toContain('second flood');
  expect(text).not.toMatch(/first flood|cluster run/);
  expect(text.indexOf('## Cluster')).toBeLessThan(text.indexOf('## Flood'));
  expect(text.match(/## Flood/g)).toHaveLength(1);
});

test('a new lane page keeps every section the file held; without one it is written as it is', () => {
  const file = page();
  writeSection(file, 'bench-flood', '## Flood\n\nflood kept\n');
  writeSection(file, 'bench-cluster', '## Cluster\n\ncluster kept\n');
  keepSections(file, '# Benchmarks\n\nnew lane table\n');
  const text = readFileSync(file, 'utf8');
  expect(text.startsWith('# Benchmarks\n\nnew lane table\n')).toBe(true);
  expect(text).toContain('flood kept');
  expect(text).toContain('cluster kept');
  // Put back in their fixed order, cluster first, whatever order the file held them in.
  expect(text.indexOf('cluster kept')).toBeLessThan(text.indexOf('flood kept'));

  const fresh = page();
  keepSections(fresh, '# Benchmarks\n\nonly lanes\n');
  expect(readFileSync(fresh, 'utf8')).toBe('# Benchmarks\n\nonly lanes\n');
});
