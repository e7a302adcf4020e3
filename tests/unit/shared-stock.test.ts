import { SharedStock, SkuTableFullError } from '../../src/memory/shared-stock.js';
import { AtomicLane } from '../../src/lanes/atomic-lane.js';

describe('SharedStock', () => {
  test('finds every SKU it created, in creation order, and nothing else', () => {
    const stock = SharedStock.allocate(5000);
    for (let i = 0; i < 5000; i++) expect(stock.ensure(`SKU-${i}`, i).created).toBe(true);
    expect(stock.count).toBe(5000);
    for (let i = 0; i < 5000; i++) {
      const slot = stock.slotOf(`SKU-${i}`);
      expect(slot).toBe(i);
      expect(stock.skuAt(slot)).toBe(`SKU-${i}`);
    }
    expect(stock.slotOf('SKU-5000')).toBe(-1);
    expect(stock.slotOf('SKU-1x')).toBe(-1);
    expect(stock.ensure('SKU-7', 99)).toEqual({ slot: 7, created: false });
  });

  test('each memory lane starts a new SKU with its own counters', () => {
    const stock = SharedStock.allocate(4);
    stock.ensure('A', 10);
    const atomic = new AtomicLane('atomic', stock);
    expect(atomic.tryBuy('A', 3)).toEqual({ kind: 'sold', remaining: 7 });
    expect(new AtomicLane('lock', stock).peek('A')).toEqual({ remaining: 10, sold: 0, initial: 10 });
  });

  test('refuses a SKU beyond its capacity with a typed error', () => {
    const stock = SharedStock.allocate(2);
    stock.ensure('A', 1);
    stock.ensure('B', 1);
    expect(() => stock.ensure('C', 1)).toThrow(SkuTableFullError);
  });

  test('another view of the same buffer sees the same SKUs and counts (as a worker does)', () => {
    const stock = SharedStock.allocate(16);
    stock.ensure('A', 10);
    const view = new SharedStock(stock.buffer, 16);
    expect(new AtomicLane('atomic', view).tryBuy('A', 4)).toEqual({ kind: 'sold', remaining: 6 });
    expect(new AtomicLane('atomic', stock).peek('A')).toEqual({ remaining: 6, sold: 4, initial: 10 });
  });
});
