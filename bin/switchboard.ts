#!/usr/bin/env node
import { ConfigError, parseConfig } from '../runtime/config.js';
import { createLogger } from '../base/logger.js';
import { startNode } from '../runtime/start.js';

const USAGE = `usage: switchboard start

Runs one Switchboard node. Configuration comes from SWITCHBOARD_* environment variables
(see README.md); with SWITCHBOARD_NATS_URL unset it runs every role on the embedded bus.`;

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'start';
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return;
  }
  if (command !== 'start') {
    console.error(`unknown command "${command}"\n${USAGE}`);
    process.exit(2);
  }

  let config;
  try {
    config = parseConfig(process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`switchboard: ${e.message}`);
      process.exit(2);
    }
    throw e;
  }

  const log = createLogger(config.logLevel);
  const node = await startNode(config, { log });
  let signalled = false;
  const onSignal = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'signal received');
    const force = setTimeout(() => {
      log.error('graceful stop took too long; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs * 3);
    force.unref();
    node.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`switchboard: ${err.message}`);
    process.exit(2);
  }
  console.error(`switchboard: failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
