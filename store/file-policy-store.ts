import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SwitchboardError, type UserPolicy } from '../protocol/index.js';
import { privateDir } from './private-dir.js';
import { AppendLog, syncDirectory, type AppendLogOptions, type ReplayReport } from './append-log.js';
import type { PolicyStore } from './types.js';

/** Log record: the user's whole policy; the last record of a user is its policy. */
export interface PolicyLogRecord {
  user: string;
  policy: UserPolicy;
}

export interface FilePolicyStoreOptions {
  /** Passed to the log; tests inject disk failures with it. Default fdatasync. */
  datasync?: AppendLogOptions['datasync'];
  /** A write failed (the put was undone in memory and answered 503). For store health. */
  onWriteFailure?: AppendLogOptions['onWriteFailure'];
  /** The replay at open found damage or a torn tail in `policies.log`. For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}

const LOG_FILE = 'policies.log';
const SNAPSHOT_TMP = 'policies.log.tmp';
/** At open, a log larger than this and more than twice its live records is rewritten as a snapshot. */
export const POLICY_COMPACT_MIN_BYTES = 256 * 1024;

/**
 * Embedded policy store: every policy in memory, each `put` appended to `policies.log` (checksummed, group
 * commit) and acknowledged once fdatasync'ed. Policies change rarely, so the log is compacted only at open:
 * one record per user written to a temp file, synced and renamed over the log.
 */
export class FilePolicyStore implements PolicyStore {
  private closed = false;

  private constructor(private readonly policies: Map<string, UserPolicy>, private readonly log: AppendLog<PolicyLogRecord>) {}

  static async open(dir: string, options: FilePolicyStoreOptions = {}): Promise<FilePolicyStore> {
    await privateDir(dir);
    const path = join(dir, LOG_FILE);
    const tmp = join(dir, SNAPSHOT_TMP);
    await rm(tmp, { force: true }); // a compaction cut short before its rename
    const policies = new Map<string, UserPolicy>();
    const report = await AppendLog.replay<PolicyLogRecord>(path, (r) => policies.set(r.user, r.policy));
    if (report.discardedBytes > 0) options.onDamage?.(path, report);
    let bytes = report.validBytes;
    if (bytes > POLICY_COMPACT_MIN_BYTES && report.records > 2 * policies.size) {
      const snapshot = new AppendLog<PolicyLogRecord>(tmp);
      await Promise.all([...policies].map(([user, policy]) => snapshot.append({ user, policy })));
      await snapshot.close();
      await rename(tmp, path);
      await syncDirectory(dir);
      bytes = snapshot.bytes;
    }
    return new FilePolicyStore(policies, new AppendLog(path, { startBytes: bytes, datasync: options.datasync, onWriteFailure: options.onWriteFailure }));
  }

  async get(user: string): Promise<UserPolicy | undefined> {
    const p = this.policies.get(user);
    return p === undefined ? undefined : clone(p);
  }

  /** Memory is updated at call time, in log order, so a `get` right after sees it; the answer waits for the disk. */
  async put(user: string, policy: UserPolicy): Promise<void> {
    if (this.closed) throw new SwitchboardError('shutting_down', 'policy store is closed');
    const copy = clone(policy);
    const before = this.policies.get(user);
    this.policies.set(user, copy);
    try {
      await this.log.append({ user, policy: copy });
    } catch (e) {
      // Answered 503: undone in memory too (the failed bytes were cut off the log), unless a later put replaced it.
      if (this.policies.get(user) === copy) {
        if (before === undefined) this.policies.delete(user);
        else this.policies.set(user, before);
      }
      throw new SwitchboardError('store_failed', (e as Error).message, { cause: e });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.log.close();
  }
}

function clone(p: UserPolicy): UserPolicy {
  return p.quietHours ? { ...p, quietHours: { ...p.quietHours } } : { ...p };
}
