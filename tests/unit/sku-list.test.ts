/**
 * The bulk list parser and its staging, as pure logic: any split of the input into chunks gives the
 * same entries and the same bad-line numbers, and staging keeps every entry exactly across its
 * fixed blocks. Budget: well under a second.
 */
import { SkuListParser, StagedSkus, type SkuListFormat } from '../../src/bulk/sku-list.js';
import { MAX_STOCK } from '../../src/config.js';

function parse(format: SkuListFormat, text: string, chunkBytes: number, maxSkus = 1000) {
  const entries: Array<[string, number]> = [];
  const parser = new SkuListParser(format, maxSkus, (sku, stock) => entries.push([sku, stock]));
  const bytes = Buffer.from(text, 'latin1');
  for (let at = 0; at < bytes.length; at += chunkBytes) parser.push(bytes.subarray(at, at + chunkBytes));
  return { entries, ...parser.end() };
}

test('every split into chunks gives the same entries and line numbers', () => {
  const ndjson = `{"sku":"A","stock":1}\r\n\n{ "stock" : 2, "sku" : "B-2" }\n{"sku":"C","stock":1.5}\n{"sku":"D.d_d","stock":${MAX_STOCK}}`;
  const whole = parse('ndjson', ndjson, ndjson.length);
  expect(whole.entries).toEqual([
    ['A', 1],
    ['B-2', 2],
  ]);
  expect(whole.errors).toEqual([{ line: 4, message: `"stock" must be an integer from 0 to ${MAX_STOCK}` }]);
  for (const chunk of [1, 2, 3, 7, 16]) expect(parse('ndjson', ndjson, chunk)).toEqual(whole);

  const csv = 'SKU , Stock\nA,1\nB,2\n\nC, 3 ';
  for (const chunk of [1, 5, 100]) expect(parse('csv', csv, chunk)).toMatchObject({ entries: [['A', 1], ['B', 2], ['C', 3]], errorCount: 0, count: 3 });
});

test('the usual line, read from its bytes, is decided exactly as the same line written otherwise', () => {
  const names = ['A', 'a.b_c-9', '-x', '_', '.a', 'a.', 'X'.repeat(32), 'X'.repeat(33), 'a b', 'é', ''];
  const stocks = ['0', '7', '007', String(MAX_STOCK), String(MAX_STOCK + 1), '12345678901', '', '-1', '1e3', '1.5'];
  /** What the list decides, through a function sink and through the staging (bytes) sink. */
  const verdict = (format: SkuListFormat, line: string) => {
    const viaFunction = parse(format, line, line.length + 1);
    const staged = new StagedSkus(16); // small blocks: this makes hundreds of stagings
    const parser = new SkuListParser(format, 1000, staged);
    parser.push(Buffer.from(line, 'latin1'));
    const end = parser.end();
    expect(staged.slice(0, staged.count)).toEqual(viaFunction.entries);
    expect(end.errors).toEqual(viaFunction.errors);
    return { entries: viaFunction.entries, errors: viaFunction.errors.map((e) => e.message) };
  };
  for (const name of names) {
    for (const stock of stocks) {
      // Compact (the fast path) and spaced (the general path) must agree, CRLF or not.
      const compact = `{"sku":"${name}","stock":${stock}}`;
      const spaced = `{ "sku" : "${name}" , "stock" : ${stock} }`;
      expect(verdict('ndjson', compact)).toEqual(verdict('ndjson', spaced));
      expect(verdict('ndjson', `${compact}\r`)).toEqual(verdict('ndjson', spaced));
      expect(verdict('csv', `${name},${stock}`)).toEqual(verdict('csv', ` ${name} , ${stock} `));
      expect(verdict('csv', `${name},${stock}\r`)).toEqual(verdict('csv', ` ${name} , ${stock} `));
    }
  }
  expect(verdict('ndjson', '{"sku":"A","stock":7}')).toEqual({ entries: [['A', 7]], errors: [] });
});

test('entries stop reaching the sink after the first bad line, and at most 20 errors are described', () => {
  const lines = ['A,1', 'x', 'B,2', ...Array.from({ length: 30 }, () => 'bad')];
  const result = parse('csv', lines.join('\n'), 4);
  expect(result.entries).toEqual([['A', 1]]);
  expect(result.errorCount).toBe(31);
  expect(result.errors).toHaveLength(20);
  expect(result.errors[0]).toEqual({ line: 2, message: 'must be two fields: sku,stock' });
});

test('staging keeps every entry exactly, across blocks', () => {
  const staged = new StagedSkus(16_384);
  const expected: Array<[string, number]> = [];
  for (let i = 0; i < 40_000; i++) {
    const sku = `S${i}-${'x'.repeat(i % 25)}`.slice(0, 32);
    expected.push([sku, (i * 7919) % 2_000_000_001]);
    staged.add(sku, (i * 7919) % 2_000_000_001);
  }
  expect(staged.count).toBe(40_000);
  for (const i of [0, 1, 16_383, 16_384, 16_385, 32_767, 32_768, 39_999]) expect([staged.sku(i), staged.stock(i)]).toEqual(expected[i]);
  expect(staged.slice(16_380, 16_390)).toEqual(expected.slice(16_380, 16_390));
  expect(() => staged.sku(40_000)).toThrow(RangeError);
  // Released: its memory goes back at once, and it holds nothing.
  staged.release();
  expect(staged.count).toBe(0);
  expect(() => staged.sku(0)).toThrow(RangeError);
  staged.add('AGAIN', 5);
  expect([staged.sku(0), staged.stock(0)]).toEqual(['AGAIN', 5]);
});
