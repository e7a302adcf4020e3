/**
 * Redis Lua scripts, one file each (`name-NKEYS.lua`, header stating KEYS/ARGV/returns), read
 * once at start-up and registered with ioredis `defineCommand`, which runs them by SHA and
 * reloads them itself after a Redis restart (NOSCRIPT).
 */
import { readFileSync } from 'node:fs';
import type { ClientContext, Redis, Result } from 'ioredis';

const SCRIPTS = ['buy-2', 'put-1', 'restock-2', 'reset-1'] as const;

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    stockBuy(skuKey: string, idempotencyKey: string, quantity: number, hasKey: '0' | '1', ttlSeconds: number): Result<[number, number], Context>;
    stockPut(key: string, stock: number, keepExisting: 0 | 1): Result<number, Context>;
    stockRestock(skuKey: string, restockKey: string, quantity: number, limit: number, hasKey: '0' | '1', ttlSeconds: number): Result<[number, number, number, number], Context>;
    stockReset(key: string): Result<number, Context>;
  }
}

function commandName(script: string): string {
  const base = script.replace(/-\d+$/, '');
  return 'stock' + base.charAt(0).toUpperCase() + base.slice(1);
}

export function defineStockCommands(redis: Redis): void {
  for (const script of SCRIPTS) {
    const lua = readFileSync(new URL(`./${script}.lua`, import.meta.url), 'utf8');
    const numberOfKeys = Number(script.slice(script.lastIndexOf('-') + 1));
    redis.defineCommand(commandName(script), { lua, numberOfKeys });
  }
}
