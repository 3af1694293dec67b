export * from './errors.js';
export * from './result.js';
export * from './fields.js';
export * from './message.js';
export * from './frames.js';
export * from './decision.js';
export * from './bus.js';
export * from './push.js';
