/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * (`{"__metadata__": {...}, name: {dtype, shape, data_offsets: [begin, end]}}`, offsets relative to the
 * end of the header), then the raw little-endian tensor bytes.
 * Spec: https://github.com/huggingface/safetensors#format
 */
import { open, rename } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { readExactly } from './file-io.ts';

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<Dtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /** Byte range inside the data section (after the header). */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
  /** Absolute file offset where the data section starts (8 + N). */
  dataStart: number;
}

/** A tensor as held in memory: float dtypes are widened to Float32 (or kept Float64 for F64). */
export interface LoadedTensor {
  dtype: Dtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export async function readSafetensorsHeader(path: string, file?: FileHandle): Promise<SafetensorsHeader> {
  const fh = file ?? (await open(path, 'r'));
  try {
    const { size } = await fh.stat();
    if (size < 8) throw new Error(`${path}: not a safetensors file (${size} bytes, shorter than the 8-byte header length)`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new Error(`${path}: bad safetensors header length ${headerLen} for a file of ${size} bytes (truncated or not safetensors)`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(headerBuf.toString('utf8'));
    } catch (err) {
      throw new Error(`${path}: safetensors header is not valid JSON (${(err as Error).message})`);
    }
    const tensors = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    const dataLen = size - 8 - headerLen;
    for (const [name, value] of Object.entries(json)) {
      if (name === '__metadata__') {
        metadata = (value ?? {}) as Record<string, string>;
        continue;
      }
      const v = value as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      if (!v || typeof v.dtype !== 'string' || !(v.dtype in DTYPE_BYTES) || !Array.isArray(v.shape) || !Array.isArray(v.data_offsets)) {
        throw new Error(`${path}: tensor "${name}" has a malformed header entry ${JSON.stringify(value)}`);
      }
      const dtype = v.dtype as Dtype;
      const [begin, end] = v.data_offsets;
      const expected = v.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      if (end - begin !== expected) {
        throw new Error(`${path}: tensor "${name}" spans ${end - begin} bytes but ${dtype}${JSON.stringify(v.shape)} needs ${expected}`);
      }
      if (end > dataLen) {
        throw new Error(`${path}: tensor "${name}" ends at byte ${end} of a ${dataLen}-byte data section (file truncated)`);
      }
      tensors.set(name, { dtype, shape: v.shape, dataOffsets: [begin, end] });
    }
    return { metadata, tensors, dataStart: 8 + headerLen };
  } finally {
    if (!file) await fh.close();
  }
}

function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

let halfTable: Float32Array | undefined;
/** Every float16 bit pattern widened once: a table lookup is much faster than decoding each value. */
function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) halfTable[bits] = f16ToF32(bits);
  }
  return halfTable;
}

/**
 * Decodes raw little-endian bytes; F16 and BF16 are widened to Float32. When `bytes` starts at an offset
 * aligned for the dtype, the result is a view of the same memory (no copy: callers pass freshly read
 * buffers); otherwise it is copied into an aligned buffer first.
 */
export function decodeTensorBytes(bytes: Uint8Array, dtype: Dtype): LoadedTensor['data'] {
  let aligned = bytes;
  if (bytes.byteOffset % DTYPE_BYTES[dtype] !== 0) {
    aligned = new Uint8Array(bytes.byteLength);
    aligned.set(bytes);
  }
  const buf = aligned.buffer;
  const offset = aligned.byteOffset;
  const count = aligned.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf, offset, count);
    case 'F64':
      return new Float64Array(buf, offset, count);
    case 'I32':
      return new Int32Array(buf, offset, count);
    case 'I64':
      return new BigInt64Array(buf, offset, count);
    case 'I16':
      return new Int16Array(buf, offset, count);
    case 'I8':
      return new Int8Array(buf, offset, count);
    case 'U8':
    case 'BOOL':
      return aligned;
    case 'BF16': {
      const src = new Uint16Array(buf, offset, count);
      const out = new Float32Array(count);
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) outBits[i] = src[i]! << 16;
      return out;
    }
    case 'F16': {
      const src = new Uint16Array(buf, offset, count);
      const out = new Float32Array(count);
      const table = halfToFloatTable();
      for (let i = 0; i < count; i++) out[i] = table[src[i]!]!;
      return out;
    }
  }
}

/**
 * Reads every tensor of a safetensors file with one positioned read per tensor into a buffer that becomes
 * the tensor's data (F32/I64/...: no copy at all; F16/BF16: the raw bytes live until widened), so the peak
 * memory is the loaded tensors plus at most one raw half-precision tensor.
 */
export async function readSafetensors(path: string): Promise<{ metadata: Record<string, string>; tensors: Map<string, LoadedTensor> }> {
  const fh = await open(path, 'r');
  try {
    const header = await readSafetensorsHeader(path, fh);
    const tensors = new Map<string, LoadedTensor>();
    for (const [name, entry] of header.tensors) {
      const [begin, end] = entry.dataOffsets;
      const bytes = new Uint8Array(end - begin);
      await readExactly(fh, path, bytes, header.dataStart + begin, `tensor "${name}"`);
      tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data: decodeTensorBytes(bytes, entry.dtype) });
    }
    return { metadata: header.metadata, tensors };
  } finally {
    await fh.close();
  }
}

export interface TensorToWrite {
  dtype: Dtype;
  shape: number[];
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file the way the Python library does: tensors sorted by dtype size (largest
 * first) then name, header padded with spaces to a multiple of 8. Written to `<path>.tmp` and renamed,
 * so a crash never leaves a half-written file under the real name.
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>,
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  entries.sort(([na, a], [nb, b]) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (na < nb ? -1 : na > nb ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of entries) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected)
      throw new Error(`tensor "${name}": ${t.data.byteLength} bytes for ${t.dtype}${JSON.stringify(t.shape)} (expected ${expected})`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBytes.length));
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(lenBuf);
    await fh.write(headerBytes);
    for (const [, t] of entries) await fh.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
