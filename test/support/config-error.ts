import { expect } from 'vitest';
import { ConfigError, parseConfig } from '../../runtime/config.js';

/** The ConfigError parseConfig throws for `env`, or fails the test when it does not throw one. */
export function configError(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(env)}`);
}
