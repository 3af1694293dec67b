import { MemoryBus } from '../bus/memory-bus.js';
import { describeBusContract } from './contracts/bus.contract.js';

describeBusContract('MemoryBus', async () => ({ bus: new MemoryBus(), cleanup: async () => {} }));
