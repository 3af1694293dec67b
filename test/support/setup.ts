import { reapAfterEachFile } from './reap.js';

// Setup of every test file (vitest.config.ts setupFiles).
reapAfterEachFile();
