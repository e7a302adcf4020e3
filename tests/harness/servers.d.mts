import type { ChildProcess } from 'node:child_process';

export declare const REPO_ROOT: string;
export declare function spawnServer(kind: 'redis' | 'mongo', port: number, dir: string, persistent?: boolean): { url: string; child: ChildProcess };
export declare function accepts(port: number): Promise<boolean>;
export declare function untilAccepting(port: number, child: ChildProcess, timeoutMs?: number): Promise<void>;
