/**
 * The part of the zip format that `torch.save` archives need: the central directory (ZIP64 included, for
 * checkpoints over 4 GiB) and where each stored (uncompressed) member's bytes start, so that tensors can be
 * read in place with positioned reads instead of loading the archive.
 * Spec: https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT (sections 4.3.7, 4.3.12, 4.3.14-16, 4.5.3)
 */
import type { FileHandle } from 'node:fs/promises';
import { readExactly } from './file-io.ts';

export interface ZipMember {
  name: string;
  /** Absolute file offset of the first byte of the member's data. */
  dataOffset: number;
  size: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

function u64(view: DataView, offset: number): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`zip field ${value} is too large`);
  return Number(value);
}

/** Lists the members of a zip archive; only stored (method 0) members are readable, as torch writes them. */
export async function readZipDirectory(fh: FileHandle, path: string): Promise<Map<string, ZipMember>> {
  const { size } = await fh.stat();
  const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tail = new Uint8Array(tailLength);
  await readExactly(fh, path, tail, size - tailLength, 'the zip end record');
  const tailView = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
    if (tailView.getUint32(i, true) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw new Error(`${path}: no zip end-of-central-directory record (the file is truncated or is not a torch.save zip archive)`);
  let count = tailView.getUint16(eocd + 10, true);
  let directorySize = tailView.getUint32(eocd + 12, true);
  let directoryOffset = tailView.getUint32(eocd + 16, true);
  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tailView.getUint32(locator, true) !== ZIP64_LOCATOR_SIGNATURE) {
      throw new Error(`${path}: zip end record asks for ZIP64 but has no ZIP64 locator (corrupt zip)`);
    }
    const record = new Uint8Array(56);
    await readExactly(fh, path, record, u64(tailView, locator + 8), 'the ZIP64 end record');
    const view = new DataView(record.buffer);
    if (view.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw new Error(`${path}: bad ZIP64 end record signature (corrupt zip)`);
    count = u64(view, 32);
    directorySize = u64(view, 40);
    directoryOffset = u64(view, 48);
  }
  if (directoryOffset + directorySize > size) {
    throw new Error(
      `${path}: zip central directory (${directorySize} bytes at ${directoryOffset}) lies past the end of the ${size}-byte file (truncated)`,
    );
  }
  const directory = new Uint8Array(directorySize);
  await readExactly(fh, path, directory, directoryOffset, 'the zip central directory');
  const view = new DataView(directory.buffer);
  const decoder = new TextDecoder();
  const members = new Map<string, ZipMember>();
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > directorySize || view.getUint32(p, true) !== CENTRAL_SIGNATURE) {
      throw new Error(`${path}: zip central directory entry ${n} is malformed (corrupt zip)`);
    }
    const method = view.getUint16(p + 10, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let localOffset = view.getUint32(p + 42, true);
    const name = decoder.decode(directory.subarray(p + 46, p + 46 + nameLength));
    // ZIP64 extended information: 64-bit values for exactly the fields saturated at 0xFFFFFFFF, in this order.
    for (let e = p + 46 + nameLength; e + 4 <= p + 46 + nameLength + extraLength; ) {
      const id = view.getUint16(e, true);
      const length = view.getUint16(e + 2, true);
      if (id === 0x0001) {
        let f = e + 4;
        if (uncompressedSize === 0xffffffff) {
          uncompressedSize = u64(view, f);
          f += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(view, f);
          f += 8;
        }
        if (localOffset === 0xffffffff) {
          localOffset = u64(view, f);
          f += 8;
        }
      }
      e += 4 + length;
    }
    p += 46 + nameLength + extraLength + commentLength;
    if (method !== 0 || compressedSize !== uncompressedSize) {
      throw new Error(`${path}: zip member "${name}" is compressed (method ${method}); torch.save writes stored members only`);
    }
    members.set(name, { name, dataOffset: localOffset, size: uncompressedSize });
  }
  // The data starts after the local header, whose extra field (torch pads it to align data to 64 bytes)
  // may differ from the central one.
  for (const member of members.values()) {
    const local = new Uint8Array(30);
    await readExactly(fh, path, local, member.dataOffset, `the zip local header of "${member.name}"`);
    const localView = new DataView(local.buffer);
    if (localView.getUint32(0, true) !== LOCAL_SIGNATURE)
      throw new Error(`${path}: zip member "${member.name}" has no local header at ${member.dataOffset} (corrupt zip)`);
    member.dataOffset += 30 + localView.getUint16(26, true) + localView.getUint16(28, true);
    if (member.dataOffset + member.size > size) {
      throw new Error(
        `${path}: zip member "${member.name}" ends at byte ${member.dataOffset + member.size} of a ${size}-byte file (truncated)`,
      );
    }
  }
  return members;
}
