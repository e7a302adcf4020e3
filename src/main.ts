/**
 * Process entry: read the configuration (failing fast with the variable's name), start the
 * supervisor (failing fast, with the port's name, when a port is taken), and drain gracefully on
 * SIGTERM or SIGINT.
 */
import { ConfigError, loadConfig, type Config } from './config.js';
import { SeedFileError } from './bulk/seed-file.js';
import { PortInUseError, Supervisor } from './supervisor.js';

/** Exit code when a port is taken: EADDRINUSE's errno on Linux, so scripts can tell it apart. */
const EXIT_PORT_IN_USE = 98;

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(JSON.stringify({ level: 'fatal', msg: `invalid configuration: ${error.message}`, variable: error.variable }));
  process.exit(78); // EX_CONFIG
}

let supervisor: Supervisor;
try {
  supervisor = new Supervisor(config);
} catch (error) {
  if (!(error instanceof SeedFileError)) throw error;
  console.error(JSON.stringify({ level: 'fatal', msg: error.message, variable: 'SEED_FILE' }));
  process.exit(78); // EX_CONFIG: the seed file is part of the configuration
}
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    supervisor.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

try {
  await supervisor.start();
} catch (error) {
  if (!(error instanceof PortInUseError)) throw error;
  console.error(JSON.stringify({ level: 'fatal', msg: error.message, port: error.port, variable: error.variable }));
  process.exit(EXIT_PORT_IN_USE);
}
