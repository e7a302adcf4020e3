import { rmSync } from 'node:fs';

export default async function globalTeardown() {
  for (const { child, dir } of globalThis.__superstockShared ?? []) {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
