import { copyFile, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';

/** Frame header: u32 body length, u32 crc32 of the body (both little-endian). */
export const HEADER_BYTES = 8;
/** A length above this is garbage, not a record: it is never allocated or checksummed. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

// Plain maps, no shared record structures: every frame must decode on its own after the log is cut or repaired.
export const packr = new Packr({ useRecords: false });

/** One damaged stretch in the middle of a log: bytes that are not a valid frame, followed by a valid one. */
export interface LogDamage {
  /** Byte offset in the file where the damage starts. */
  offset: number;
  /** Bytes skipped until the next valid frame. */
  bytes: number;
}

export interface ReplayReport {
  /** Valid records visited. */
  records: number;
  /** File size after replay: the valid records only (damage and a torn tail were removed). */
  validBytes: number;
  /** Every byte dropped: damaged stretches plus the torn tail (0 for a clean log). */
  discardedBytes: number;
  /** Damaged stretches in the middle of the file, each followed by a valid record; replay went on after each. */
  damage: LogDamage[];
  /** Bytes after the last valid record that do not form one (a write cut short by a crash); cut off. */
  tornTailBytes: number;
  /** Where the file as found was copied before it was rewritten without its damage (`<file>.damaged-<time>`). */
  keptAs?: string;
}

export interface ReplayOptions {
  /** Epoch ms for the name of the copy kept aside. Default `Date.now`. */
  now?: () => number;
}

/**
 * Reads every valid record of an append log in order. A frame that does not validate ([len][crc32][msgpack map])
 * costs only itself: the scan resyncs at the next offset where a whole frame validates and goes on. A damaged
 * stretch followed by valid records is "damage": the file is first copied to `<file>.damaged-<time>` for
 * inspection, then rewritten without it (temp file, fsync, rename, directory fsync). Invalid bytes after the last
 * valid record are a torn tail (a write cut short) and are truncated, as before. A missing file is empty.
 *
 * Limits: a resync can in principle accept a frame-shaped byte run inside a damaged record's payload (the crc32 over
 * a msgpack map makes a random false match about 1 in 2^32 per candidate offset).
 *
 * `visit` also gets each record's frame offset and length in the file as read; when damage was found (`damage` not
 * empty) the file is rewritten without it, so offsets after the first damage no longer hold: replay again to use them.
 */
export async function replayLog<T>(path: string, visit: (record: T, offset: number, length: number) => void, options: ReplayOptions = {}): Promise<ReplayReport> {
  await rm(repairPath(path), { force: true }); // a repair cut short before its rename
  let data: Buffer;
  try {
    data = await readFile(path); // segments are bounded (inbox roll, registry compaction), so one read is fine
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: 0, validBytes: 0, discardedBytes: 0, damage: [], tornTailBytes: 0 };
    throw e;
  }
  const good: [number, number][] = [];
  const damage: LogDamage[] = [];
  let offset = 0;
  let records = 0;
  let tornTailBytes = 0;
  while (offset < data.length) {
    let frame = decodeAt<T>(data, offset);
    let at = offset;
    if (frame === undefined) {
      at = offset + 1;
      while (at < data.length && (frame = decodeAt<T>(data, at)) === undefined) at++;
      if (frame === undefined) {
        tornTailBytes = data.length - offset;
        break;
      }
      damage.push({ offset, bytes: at - offset });
    }
    visit(frame!.record, at, frame!.end - at);
    records++;
    good.push([at, frame!.end]);
    offset = frame!.end;
  }
  const validBytes = good.reduce((n, [s, e]) => n + e - s, 0);
  const report: ReplayReport = { records, validBytes, discardedBytes: data.length - validBytes, damage, tornTailBytes };
  if (damage.length > 0) {
    report.keptAs = `${path}.damaged-${stamp((options.now ?? Date.now)())}`;
    await copyFile(path, report.keptAs);
    await rewrite(path, data, good);
  } else if (tornTailBytes > 0) {
    await truncateDurably(path, validBytes);
  }
  return report;
}

/** The frame starting at `offset` if it is whole and valid, else undefined. */
function decodeAt<T>(data: Buffer, offset: number): { record: T; end: number } | undefined {
  if (offset + HEADER_BYTES > data.length) return undefined;
  const length = data.readUInt32LE(offset);
  const end = offset + HEADER_BYTES + length;
  if (length === 0 || length > MAX_RECORD_BYTES || end > data.length) return undefined;
  const first = data[offset + HEADER_BYTES];
  // Every record is a msgpack map (fixmap, map16, map32): a cheap test before the checksum while resyncing.
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) return undefined;
  const body = data.subarray(offset + HEADER_BYTES, end);
  if (crc32(body) !== data.readUInt32LE(offset + 4)) return undefined;
  try {
    return { record: packr.unpack(body) as T, end };
  } catch {
    return undefined; // a matching crc over undecodable bytes: corrupt all the same
  }
}

function repairPath(path: string): string {
  return join(dirname(path), `${basename(path)}.repair`);
}

function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[:.]/g, '-');
}

/** Replaces the file by its valid frames: temp file, fsync, rename over, directory fsync. */
async function rewrite(path: string, data: Buffer, good: [number, number][]): Promise<void> {
  const tmp = repairPath(path);
  const handle = await open(tmp, 'w');
  try {
    for (const [s, e] of good) await writeAll(handle, data.subarray(s, e));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await syncDirectory(dirname(path));
}

/** Writes every byte of `data` at the handle's position (a write may be partial). */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written);
    written += bytesWritten;
  }
}

async function truncateDurably(path: string, length: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync on a directory makes renames, creations and unlinks in it durable (Linux). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
