#!/usr/bin/env node
import { ConfigError, parseConfig } from '../runtime/config.js';
import { createLogger } from '../base/logger.js';
import { StartError } from '../runtime/start-error.js';
import { sendCommand, tokenCommand } from './cli-commands.js';
import { UsageError } from './cli-secrets.js';
import { USAGE } from './usage.js';

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'start';
  if (command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return;
  }
  if (command === 'token' || command === 'send') {
    try {
      console.log(await (command === 'token' ? tokenCommand : sendCommand)(argv.slice(1), process.env));
      return;
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      console.error(`switchboard ${command}: ${e.message}`);
      process.exit(e.exitCode);
    }
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

  const log = createLogger(config.logLevel, undefined, { node: config.nodeId });
  // Loaded here so that `token`, `send` and `--help` do not load the whole node.
  const { startNode } = await import('../runtime/start.js');
  const node = await startNode(config, { log });
  let signalled = false;
  /** Graceful stop, then exit with `code` (1 if the stop fails or takes too long). */
  const stopAndExit = (code: number) => {
    if (signalled) return;
    signalled = true;
    const force = setTimeout(() => {
      log.error('graceful stop took too long; exiting');
      process.exit(1);
    }, config.shutdownDelayMs + config.shutdownTimeoutMs * 3);
    force.unref();
    node.stop().then(
      () => process.exit(code),
      (err) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    if (!signalled) log.info({ signal }, 'signal received');
    stopAndExit(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // Refused while running (RunningNode.refused): one line on stderr as at start, then the same exit code.
  void node.refused?.then((err) => {
    console.error(`switchboard: ${err.message}`);
    stopAndExit(err.exitCode);
  });
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`switchboard: ${err.message}`);
    process.exit(2);
  }
  if (err instanceof StartError) {
    console.error(`switchboard: ${err.message}`);
    process.exit(err.exitCode);
  }
  console.error(`switchboard: failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
