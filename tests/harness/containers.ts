/**
 * Containers for tests, run by podman from the images `make image` builds, in the project's own
 * container store (.data/containers, configured by scripts/image/containers.sh: vfs storage,
 * cgroupfs, ulimits no higher than the shell's). Every container uses the host's network on free
 * loopback ports, so nothing — no bridge, no firewall rule — is added to the machine, and each
 * test file removes the containers it started.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './deps.js';

const run = promisify(execFile);
const CONTAINERS_HOME = join(REPO_ROOT, '.data', 'containers');
const PODMAN_ENV = {
  ...process.env,
  CONTAINERS_CONF: join(CONTAINERS_HOME, 'containers.conf'),
  CONTAINERS_STORAGE_CONF: join(CONTAINERS_HOME, 'storage.conf'),
};

export const SERVICE_IMAGE = 'docker.io/library/superstock:dev';
export const REDIS_IMAGE = 'localhost/superstock-redis:local';
export const MONGO_WIRE_IMAGE = 'localhost/superstock-mongo-wire:local';

export interface CommandOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run podman against the project's store; never throws for a non-zero exit (the caller judges). */
export async function podman(...args: string[]): Promise<CommandOutput> {
  if (!existsSync(PODMAN_ENV.CONTAINERS_CONF)) throw new Error('no container store: run `make image` first');
  try {
    const { stdout, stderr } = await run('podman', args, { env: PODMAN_ENV, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof failed.code !== 'number') throw new Error(`podman ${args.join(' ')}: ${failed.message}`, { cause: error });
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function mustPodman(...args: string[]): Promise<string> {
  const result = await podman(...args);
  if (result.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

export interface ContainerSpec {
  readonly image: string;
  /** Arguments after the image (the command, or the entrypoint's arguments). */
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Extra `podman run` options, e.g. `--read-only`. */
  readonly options?: readonly string[];
}

export class Container {
  constructor(
    readonly name: string,
    private readonly spec: ContainerSpec,
  ) {}

  /** Create and start it (again, after remove()). */
  async start(): Promise<void> {
    const env = Object.entries(this.spec.env ?? {}).flatMap(([key, value]) => ['--env', `${key}=${value}`]);
    await mustPodman('run', '--detach', '--name', this.name, '--network', 'host', ...env, ...(this.spec.options ?? []), this.spec.image, ...(this.spec.args ?? []));
  }

  /** `podman stop`: the image's STOPSIGNAL (SIGTERM), SIGKILL after `timeoutSeconds`. */
  async stop(timeoutSeconds = 15): Promise<void> {
    await mustPodman('stop', '--time', String(timeoutSeconds), this.name);
  }

  /** SIGKILL, as a crash or an OOM kill would. */
  async kill(): Promise<void> {
    await mustPodman('kill', '--signal', 'KILL', this.name);
  }

  async restart(): Promise<void> {
    await mustPodman('start', this.name);
  }

  async remove(): Promise<void> {
    await podman('rm', '--force', '--time', '0', this.name);
  }

  exec(...command: string[]): Promise<CommandOutput> {
    return podman('exec', this.name, ...command);
  }

  async inspect(format: string): Promise<string> {
    return (await mustPodman('inspect', '--format', format, this.name)).trim();
  }

  async logs(): Promise<string> {
    const result = await podman('logs', this.name);
    return result.stdout + result.stderr;
  }
}

/** Containers of one test file, named `<prefix>-<name>` with a random prefix, removed together. */
export class ContainerSet {
  readonly prefix = `superstock-test-${randomBytes(3).toString('hex')}`;
  private readonly containers: Container[] = [];

  /** A container of this set, not started yet. */
  define(name: string, spec: ContainerSpec): Container {
    const container = new Container(`${this.prefix}-${name}`, spec);
    this.containers.push(container);
    return container;
  }

  async start(name: string, spec: ContainerSpec): Promise<Container> {
    const container = this.define(name, spec);
    await container.start();
    return container;
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.containers.splice(0).map((c) => c.remove()));
  }
}
