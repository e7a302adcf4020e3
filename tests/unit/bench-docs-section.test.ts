/**
 * docs/benchmarks.md has two writers: the lane bench writes the page, the cluster bench its
 * section. Neither may drop what the other wrote (pure file logic, on a temporary file).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepClusterSection, writeClusterSection } from '../../bench/docs-section.js';

const page = () => join(mkdtempSync(join(tmpdir(), 'superstock-docs-')), 'benchmarks.md');

test('the cluster section is added at the end, then replaced in place, never duplicated', () => {
  const file = page();
  writeFileSync(file, '# Benchmarks\n\nlane table\n');
  writeClusterSection(file, '## Cluster\n\nfirst run\n');
  writeClusterSection(file, '## Cluster\n\nsecond run\n');
  const text = readFileSync(file, 'utf8');
  expect(text.startsWith('# Benchmarks\n\nlane table\n')).toBe(true);
  expect(text).toContain('second run');
  expect(text).not.toContain('first run');
  expect(text.match(/## Cluster/g)).toHaveLength(1);
});

test('a new lane page keeps the cluster section the file held; without one it is written as it is', () => {
  const file = page();
  writeClusterSection(file, '## Cluster\n\nkept\n');
  keepClusterSection(file, '# Benchmarks\n\nnew lane table\n');
  const text = readFileSync(file, 'utf8');
  expect(text.startsWith('# Benchmarks\n\nnew lane table\n')).toBe(true);
  expect(text).toContain('kept');

  const fresh = page();
  keepClusterSection(fresh, '# Benchmarks\n\nonly lanes\n');
  expect(readFileSync(fresh, 'utf8')).toBe('# Benchmarks\n\nonly lanes\n');
});
