import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceRegistration, TokenRemovedReason } from '../protocol/index.js';
import { SwitchboardError } from '../protocol/index.js';
import { privateDir } from './private-dir.js';
import { AppendLog, syncDirectory, type AppendLogOptions, type ReplayReport } from './append-log.js';
import { SEEN_RESOLUTION_MS, type DeviceRecord, type DeviceRegistry, type TokenRemoval, type TokenRemovalListener } from './types.js';

export const DEFAULT_COMPACT_MIN_BYTES = 1024 * 1024;

export interface FileDeviceRegistryOptions {
  /** The log is compacted once it is larger than this and more than twice the live data. Default 1 MiB. */
  compactMinBytes?: number;
  /** Epoch ms for `updatedAt`. Default `Date.now`. */
  now?: () => number;
  /** Told of every token removed (moved, replaced, dead, unregistered, deleted, pruned) once the removal is durable. */
  onTokenRemoved?: TokenRemovalListener;
  /** Passed to the log; tests inject disk failures with it. Default fdatasync. */
  datasync?: AppendLogOptions['datasync'];
  /** A write failed (the change was undone in memory and answered 503). For store health. */
  onWriteFailure?: AppendLogOptions['onWriteFailure'];
  /** The replay at open found damage or a torn tail in `devices.log`. For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}

/** Log records: a put carries the whole device record, so the last put of a device is its state. */
export type DeviceLogRecord =
  | { t: 'put'; user: string; rec: DeviceRecord }
  | { t: 'remove'; user: string; device: string }
  | { t: 'clearToken'; user: string; device: string; at: number }
  | { t: 'seen'; user: string; device: string; at: number };

/** Who holds a token now (the one-token-one-device index, rebuilt from the log at open). */
interface Holder {
  user: string;
  device: string;
}

const LOG_FILE = 'devices.log';
const SNAPSHOT_TMP = 'devices.log.tmp';

/**
 * Embedded device registry: every device in memory, each change appended to `devices.log` and acknowledged once
 * synced. Memory is updated at call time, in log order, so a conditional clearToken sees every earlier call.
 * When the log outgrows the live data it is replaced by a snapshot (one put per device), swapped in atomically.
 */
export class FileDeviceRegistry implements DeviceRegistry {
  private readonly users = new Map<string, Map<string, DeviceRecord>>();
  /** token -> its (user, device); kept by `applyRecord`, so it always matches `users`. */
  private readonly tokens = new Map<string, Holder>();
  private log: AppendLog<DeviceLogRecord>;
  /** Set while compacting: records wait here and go to the new log in call order. */
  private deferred: { record: DeviceLogRecord; resolve: () => void; reject: (e: unknown) => void }[] | undefined;
  private compaction: Promise<void> | undefined;
  private closed = false;
  private readonly compactMinBytes: number;
  private readonly now: () => number;
  private readonly onTokenRemoved: TokenRemovalListener;
  private readonly logOptions: AppendLogOptions;
  /** Failed log writes so far: a compaction whose snapshot saw a write that then failed gives up (see compact). */
  private writeFailures = 0;

  private constructor(readonly dir: string, startBytes: number, options: FileDeviceRegistryOptions) {
    this.logOptions = {
      datasync: options.datasync,
      onWriteFailure: (f) => {
        this.writeFailures++;
        options.onWriteFailure?.(f);
      },
    };
    this.log = this.newLog(join(dir, LOG_FILE), startBytes);
    this.compactMinBytes = options.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES;
    this.now = options.now ?? Date.now;
    this.onTokenRemoved = options.onTokenRemoved ?? (() => {});
  }

  static async open(dir: string, options: FileDeviceRegistryOptions = {}): Promise<FileDeviceRegistry> {
    await privateDir(dir);
    await rm(join(dir, SNAPSHOT_TMP), { force: true }); // a compaction cut short before its rename
    const users = new Map<string, Map<string, DeviceRecord>>();
    const tokens = new Map<string, Holder>();
    const path = join(dir, LOG_FILE);
    const report = await AppendLog.replay<DeviceLogRecord>(path, (r) => applyRecord(users, tokens, r));
    if (report.discardedBytes > 0) options.onDamage?.(path, report);
    const registry = new FileDeviceRegistry(dir, report.validBytes, options);
    for (const [user, devices] of users) registry.users.set(user, devices);
    for (const [token, holder] of tokens) registry.tokens.set(token, holder);
    return registry;
  }

  /**
   * Section 3, one token one device: a token held by another (user, device) is cleared there in the same batch
   * (`moved`). Section 3 also publishes every token removed: the device's own different previous token, which the
   * put overwrites, is reported `replaced` once the put is durable; the same token stored again reports nothing.
   */
  async put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord> {
    const at = this.now();
    const rec: DeviceRecord = { device, os: reg.os, token: reg.token, updatedAt: at };
    if (reg.app !== undefined) rec.app = reg.app;
    const prev = this.tokens.get(reg.token);
    const moved = prev && (prev.user !== user || prev.device !== device) ? this.removalOf(prev.user, prev.device, 'moved') : undefined;
    const own = this.removalOf(user, device, 'replaced');
    const replaced = own?.token !== reg.token ? own : undefined;
    // Both records are appended now (one group commit); the put goes first, so a crash between them can leave
    // the token on both devices (as before this rule) but never on neither.
    const writes = [this.write({ t: 'put', user, rec })];
    if (moved) writes.push(this.write({ t: 'clearToken', user: moved.user, device: moved.device, at }));
    await Promise.all(writes);
    if (moved) this.onTokenRemoved(moved);
    if (replaced) this.onTokenRemoved(replaced);
    return { ...rec };
  }

  async remove(user: string, device: string): Promise<boolean> {
    if (this.users.get(user)?.has(device) !== true) return false;
    const removal = this.removalOf(user, device, 'deleted');
    await this.write({ t: 'remove', user, device });
    if (removal) this.onTokenRemoved(removal);
    return true;
  }

  async clearToken(user: string, device: string, token: string, reason: TokenRemovedReason = 'dead'): Promise<boolean> {
    const rec = this.users.get(user)?.get(device);
    if (rec === undefined || rec.token !== token) return false; // a newer token was registered meanwhile
    const removal = this.removalOf(user, device, reason)!;
    await this.write({ t: 'clearToken', user, device, at: this.now() });
    this.onTokenRemoved(removal);
    return true;
  }

  async seen(user: string, device: string, at: number): Promise<void> {
    const rec = this.users.get(user)?.get(device);
    if (rec?.token === undefined || at - (rec.seenAt ?? rec.updatedAt) < SEEN_RESOLUTION_MS) return;
    await this.write({ t: 'seen', user, device, at });
  }

  async prune(before: number): Promise<number> {
    const stale: TokenRemoval[] = [];
    for (const [user, devices] of this.users) {
      for (const rec of devices.values()) {
        if (rec.token !== undefined && Math.max(rec.updatedAt, rec.seenAt ?? 0) < before) stale.push(this.removalOf(user, rec.device, 'pruned')!);
      }
    }
    const at = this.now();
    await Promise.all(stale.map((r) => this.write({ t: 'clearToken', user: r.user, device: r.device, at }).then(() => this.onTokenRemoved(r))));
    return stale.length;
  }

  /** The removal to report for the device's current token, if it has one. */
  private removalOf(user: string, device: string, reason: TokenRemovedReason): TokenRemoval | undefined {
    const rec = this.users.get(user)?.get(device);
    return rec?.token === undefined ? undefined : { user, device, os: rec.os, token: rec.token, reason };
  }

  async list(user: string): Promise<DeviceRecord[]> {
    return [...(this.users.get(user)?.values() ?? [])].map((r) => ({ ...r }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.compaction;
    await this.log.close();
  }

  /**
   * Applies the change in memory now and resolves once it is durable. A failed write is undone in memory (unless a
   * later call changed the device since), so a change answered 503 is neither used nor replayed (issue 8 part 3).
   */
  private async write(record: DeviceLogRecord): Promise<void> {
    if (this.closed) throw new SwitchboardError('shutting_down', 'device registry is closed');
    const device = record.t === 'put' ? record.rec.device : record.device;
    const before = this.users.get(record.user)?.get(device);
    const undo = before === undefined ? undefined : { ...before };
    applyRecord(this.users, this.tokens, record);
    const after = this.users.get(record.user)?.get(device);
    const afterState = after === undefined ? undefined : { ...after };
    // A log whose failed tail could not be cut is replaced by a snapshot of memory first (see compact).
    if (this.log.failed && this.compaction === undefined) this.compaction = this.compact().finally(() => (this.compaction = undefined));
    const durable =
      this.deferred !== undefined
        ? new Promise<void>((resolve, reject) => this.deferred!.push({ record, resolve, reject }))
        : this.log.append(record);
    this.maybeCompact();
    try {
      await durable;
    } catch (e) {
      const now = this.users.get(record.user)?.get(device);
      if (now === after && (now === undefined || sameRecord(now, afterState!))) this.restore(record.user, device, undo);
      throw new SwitchboardError('store_failed', (e as Error).message, { cause: e });
    }
  }

  /** Puts `rec` (a copy taken before a failed write) back, or removes the device when there was none. */
  private restore(user: string, device: string, rec: DeviceRecord | undefined): void {
    applyRecord(this.users, this.tokens, rec !== undefined ? { t: 'put', user, rec } : { t: 'remove', user, device });
  }

  private newLog(path: string, startBytes: number): AppendLog<DeviceLogRecord> {
    return new AppendLog(path, { ...this.logOptions, startBytes });
  }

  private maybeCompact(): void {
    if (this.compaction !== undefined || this.log.bytes < this.compactMinBytes) return;
    if (this.log.bytes <= 2 * this.liveBytes()) return;
    this.compaction = this.compact().finally(() => (this.compaction = undefined));
  }

  /** Approximate size of a snapshot; run only when the log is past the minimum size, so the scan is rare. */
  private liveBytes(): number {
    let bytes = 0;
    for (const [user, devices] of this.users) for (const rec of devices.values()) bytes += 64 + user.length + rec.device.length + (rec.token?.length ?? 0);
    return bytes;
  }

  /**
   * Writes the snapshot to a temp file, syncs it, renames it over the log and syncs the directory. Changes made
   * meanwhile are already in memory (so in the snapshot or after it) and wait in `deferred` for the new log.
   */
  private async compact(): Promise<void> {
    const snapshot: DeviceLogRecord[] = [];
    for (const [user, devices] of this.users) for (const rec of devices.values()) snapshot.push({ t: 'put', user, rec: { ...rec } });
    this.deferred = [];
    const old = this.log;
    const logPath = join(this.dir, LOG_FILE);
    const tmpPath = join(this.dir, SNAPSHOT_TMP);
    let next: AppendLog<DeviceLogRecord>;
    try {
      const failuresBefore = this.writeFailures;
      await old.close(); // its queued records are older than the snapshot and covered by it...
      // ...unless one of them failed: that change is undone in memory and answered 503, but the snapshot has it, and
      // would make it durable after all. Give this snapshot up; the next write that finds the log big takes another.
      if (this.writeFailures !== failuresBefore) throw new Error('a write the snapshot holds failed');
      await rm(tmpPath, { force: true });
      const tmp = new AppendLog<DeviceLogRecord>(tmpPath, { datasync: this.logOptions.datasync });
      await Promise.all(snapshot.map((r) => tmp.append(r))); // group commit: a couple of write + fdatasync rounds
      await tmp.close();
      await rename(tmpPath, logPath);
      await syncDirectory(this.dir);
      next = this.newLog(logPath, tmp.bytes);
    } catch {
      // Before the rename the old log is intact: keep appending to it, unless its own tail is unknown (then the next
      // write tries another snapshot).
      next = old.failed ? old : this.newLog(logPath, old.bytes);
    }
    this.log = next;
    const waiting = this.deferred;
    this.deferred = undefined;
    for (const w of waiting) next.append(w.record).then(w.resolve, w.reject);
  }
}

function sameRecord(a: DeviceRecord, b: DeviceRecord): boolean {
  return a.token === b.token && a.updatedAt === b.updatedAt && a.os === b.os && a.app === b.app && a.seenAt === b.seenAt;
}

function applyRecord(users: Map<string, Map<string, DeviceRecord>>, tokens: Map<string, Holder>, record: DeviceLogRecord): void {
  const { user } = record;
  const dropToken = (rec: DeviceRecord | undefined) => {
    const holder = rec?.token === undefined ? undefined : tokens.get(rec.token);
    if (holder?.user === user && holder.device === rec!.device) tokens.delete(rec!.token!);
  };
  switch (record.t) {
    case 'put': {
      let devices = users.get(user);
      if (devices === undefined) users.set(user, (devices = new Map()));
      dropToken(devices.get(record.rec.device));
      devices.set(record.rec.device, { ...record.rec });
      if (record.rec.token !== undefined) tokens.set(record.rec.token, { user, device: record.rec.device });
      return;
    }
    case 'remove': {
      const devices = users.get(user);
      dropToken(devices?.get(record.device));
      devices?.delete(record.device);
      if (devices?.size === 0) users.delete(user);
      return;
    }
    case 'clearToken': {
      const rec = users.get(user)?.get(record.device);
      if (rec === undefined) return;
      dropToken(rec);
      delete rec.token; // the condition was checked at call time; log order keeps it valid at replay
      delete rec.seenAt;
      rec.updatedAt = record.at;
      return;
    }
    case 'seen': {
      const rec = users.get(user)?.get(record.device);
      if (rec?.token !== undefined) rec.seenAt = record.at;
      return;
    }
  }
}
