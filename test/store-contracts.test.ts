import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDeviceRegistry } from '../store/file-device-registry.js';
import { FileInbox } from '../store/file-inbox.js';
import { FileHeldStore } from '../store/file-held-store.js';
import { describeHeldStoreContract } from './contracts/held-store.contract.js';
import { describeDeviceRegistryContract } from './contracts/device-registry.contract.js';
import { describeIngressContract } from './contracts/ingress.contract.js';
import { describePolicyStoreContract } from './contracts/policy-store.contract.js';
import { FilePolicyStore } from '../store/file-policy-store.js';

describeDeviceRegistryContract('FileDeviceRegistry', async (options) => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-registry-'));
  const opened: FileDeviceRegistry[] = [await FileDeviceRegistry.open(dir, options)];
  return {
    registry: opened[0],
    reopen: async () => opened[opened.push(await FileDeviceRegistry.open(dir, options)) - 1],
    cleanup: async () => {
      for (const r of opened) await r.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeIngressContract('FileInbox', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-inbox-'));
  const opened: FileInbox[] = [await FileInbox.open(dir)];
  return {
    ingress: opened[0],
    reopen: async () => opened[opened.push(await FileInbox.open(dir)) - 1],
    cleanup: async () => {
      for (const i of opened) await i.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeHeldStoreContract('FileHeldStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-held-'));
  const opened: FileHeldStore[] = [await FileHeldStore.open(dir)];
  return {
    store: opened[0],
    reopen: async () => opened[opened.push(await FileHeldStore.open(dir)) - 1],
    cleanup: async () => {
      for (const s of opened) await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describePolicyStoreContract('FilePolicyStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sb-policies-'));
  const opened: FilePolicyStore[] = [await FilePolicyStore.open(dir)];
  return {
    store: opened[0],
    reopen: async () => opened[opened.push(await FilePolicyStore.open(dir)) - 1],
    cleanup: async () => {
      for (const s of opened) await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
