import { readFile, writeFile } from 'node:fs/promises';
import { HEADER_BYTES, packr } from '../../store/log-replay.js';

/** One frame of an append log as found on disk: where it is and what it holds. */
export interface Frame {
  offset: number;
  length: number;
  record: any;
}

/** Every frame of a clean append log, in order (for tests that damage a chosen record). */
export async function readFrames(path: string): Promise<Frame[]> {
  const data = await readFile(path);
  const frames: Frame[] = [];
  for (let offset = 0; offset + HEADER_BYTES <= data.length; ) {
    const bodyLength = data.readUInt32LE(offset);
    const length = HEADER_BYTES + bodyLength;
    frames.push({ offset, length, record: packr.unpack(data.subarray(offset + HEADER_BYTES, offset + length)) });
    offset += length;
  }
  return frames;
}

/** Flips `count` bytes (xor 0xff) in the body of `frame`, as a bad sector or a stray write would. */
export async function flipBytes(path: string, frame: Frame, count = 4): Promise<void> {
  const data = await readFile(path);
  const at = frame.offset + HEADER_BYTES + Math.floor((frame.length - HEADER_BYTES) / 2);
  for (let i = 0; i < count; i++) data[at + i] ^= 0xff;
  await writeFile(path, data);
}
