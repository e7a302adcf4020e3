// k6 provides a console, which @types/k6 does not declare.
declare const console: { log(...values: unknown[]): void };
