/**
 * Reads `pytorch_model.bin` as written by `torch.save` since torch 1.6: a zip archive `<name>/data.pkl` (a
 * pickle of the state dict in which every tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
 * stride, ...)` and every storage a persistent id `('storage', torch.FloatStorage, key, location, numel)`)
 * plus one stored member `<name>/data/<key>` per storage with its raw little-endian bytes.
 *
 * Each tensor is read with positioned reads from its storage member (only the elements it spans), so loading
 * never holds the archive in memory; views (transposes, slices, `expand`) are gathered into contiguous
 * row-major arrays, and names that are the same view of the same storage (tied weights) share one
 * LoadedTensor (treat loaded tensors as read-only).
 * Reference: torch/serialization.py (`_load`, `persistent_load`), torch/_utils.py (`_rebuild_tensor_v2`).
 */
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { DTYPE_BYTES, decodeTensorBytes } from './safetensors.ts';
import type { Dtype, LoadedTensor } from './safetensors.ts';
import { IGNORES_STATE, unpickle } from './pickle.ts';
import { readExactly } from './file-io.ts';
import { readZipDirectory } from './zip.ts';
import type { ZipMember } from './zip.ts';

const STORAGE_DTYPES: Record<string, Dtype> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  // torch >= 2 pickles byte storages of dtypes without a typed storage class, with the dtype on the tensor.
  UntypedStorage: 'U8',
};

const TORCH_DTYPES: Record<string, Dtype> = {
  float32: 'F32',
  float: 'F32',
  float64: 'F64',
  double: 'F64',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: Dtype,
  ) {}
}
class TorchDtype {
  constructor(readonly dtype: Dtype) {}
}
/** `dtype` is the one the storage was pickled with; `_rebuild_tensor_v2` tensors take theirs from it. */
class Storage {
  constructor(
    readonly key: string,
    readonly dtype: Dtype,
    readonly member: ZipMember,
    readonly bytes: number,
  ) {}
}

/** A tensor as the pickle describes it: a strided view into a storage, read later. */
class TensorView {
  readonly [IGNORES_STATE] = true;
  constructor(
    readonly storage: Storage,
    readonly dtype: Dtype,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

function intList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v) && v >= 0)) {
    throw new Error(
      `${what} must be a tuple of non-negative integers, got ${JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}` : v))}`,
    );
  }
  return value as number[];
}

function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown, dtype?: Dtype): TensorView {
  if (!(storage instanceof Storage)) throw new Error('_rebuild_tensor: the first argument is not a storage');
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw new Error(`_rebuild_tensor: bad storage offset ${String(offset)}`);
  const shape = intList(size, '_rebuild_tensor: size');
  const strides = intList(stride, '_rebuild_tensor: stride');
  if (shape.length !== strides.length)
    throw new Error(`_rebuild_tensor: size ${JSON.stringify(shape)} and stride ${JSON.stringify(strides)} differ in rank`);
  return new TensorView(storage, dtype ?? storage.dtype, offset as number, shape, strides);
}

function typeMarker(name: string) {
  const marker = () => {
    throw new Error(`${name} cannot be called`);
  };
  Object.defineProperty(marker, 'name', { value: name });
  return marker;
}

/** The globals a state dict may contain; anything else is refused (no code from the file is ever run). */
function findClass(module: string, name: string): unknown {
  const full = `${module}.${name}`;
  if (module === 'torch' && name in STORAGE_DTYPES) return new StorageType(name, STORAGE_DTYPES[name]!);
  if (module === 'torch' && name in TORCH_DTYPES) return new TorchDtype(TORCH_DTYPES[name]!);
  switch (full) {
    case 'collections.OrderedDict':
      return (items?: unknown) => new Map(Array.isArray(items) ? (items as [unknown, unknown][]) : []);
    case 'torch._utils._rebuild_tensor_v2':
      return (storage: unknown, offset: unknown, size: unknown, stride: unknown) => rebuildTensor(storage, offset, size, stride);
    case 'torch._utils._rebuild_tensor_v3':
      return (storage: unknown, offset: unknown, size: unknown, stride: unknown, _grad: unknown, _hooks: unknown, dtype: unknown) => {
        if (!(dtype instanceof TorchDtype)) throw new Error('_rebuild_tensor_v3: unsupported dtype argument');
        return rebuildTensor(storage, offset, size, stride, dtype.dtype);
      };
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return (data: unknown) => data;
    case 'torch._tensor._rebuild_from_type_v2':
      return (func: unknown, _type: unknown, args: unknown) => {
        if (typeof func !== 'function' || !Array.isArray(args)) throw new Error('_rebuild_from_type_v2: malformed arguments');
        return func(...args);
      };
    case 'torch._tensor.Tensor':
    case 'torch.Tensor':
    case 'torch.nn.parameter.Parameter':
      return typeMarker(full);
    case '_codecs.encode': // how protocol 2 pickles bytes
      return (text: unknown) => Uint8Array.from(String(text), (c) => c.charCodeAt(0) & 0xff);
  }
  throw new Error(`global ${full} is not part of a plain state dict and is not loaded (only tensors, storages and OrderedDict are)`);
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** Copies the elements of a strided view, in row-major order, out of the bytes it spans. */
function gather(span: Uint8Array<ArrayBuffer>, elementBytes: number, shape: number[], stride: number[], count: number): Uint8Array {
  const word = Math.min(elementBytes, 4);
  const words = elementBytes / word;
  const View = word === 1 ? Uint8Array : word === 2 ? Uint16Array : Uint32Array;
  const source = new View(span.buffer, span.byteOffset, span.byteLength / word);
  const out = new Uint8Array(count * elementBytes);
  const target = new View(out.buffer);
  const index = new Array<number>(shape.length).fill(0);
  let element = 0;
  for (let n = 0; n < count; n++) {
    for (let w = 0; w < words; w++) target[n * words + w] = source[element * words + w]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]!++;
      element += stride[d]!;
      if (index[d]! < shape[d]!) break;
      element -= stride[d]! * shape[d]!;
      index[d] = 0;
    }
  }
  return out;
}

async function readView(fh: FileHandle, path: string, name: string, view: TensorView): Promise<LoadedTensor> {
  const elementBytes = DTYPE_BYTES[view.dtype];
  const count = view.shape.reduce((a, b) => a * b, 1);
  if (count === 0) return { dtype: view.dtype, shape: view.shape, data: decodeTensorBytes(new Uint8Array(0), view.dtype) };
  const last = view.shape.reduce((end, size, d) => end + (size - 1) * view.stride[d]!, view.offset);
  const spanBytes = (last + 1 - view.offset) * elementBytes;
  if ((last + 1) * elementBytes > view.storage.bytes) {
    throw new Error(
      `${path}: tensor "${name}" (${view.dtype}${JSON.stringify(view.shape)}, offset ${view.offset}, stride ${JSON.stringify(view.stride)}) reads past the end of its ${view.storage.bytes}-byte storage "${view.storage.key}"`,
    );
  }
  const span = new Uint8Array(spanBytes);
  await readExactly(fh, path, span, view.storage.member.dataOffset + view.offset * elementBytes, `tensor "${name}"`);
  const bytes = isContiguous(view.shape, view.stride) ? span : gather(span, elementBytes, view.shape, view.stride, count);
  return { dtype: view.dtype, shape: view.shape, data: decodeTensorBytes(bytes, view.dtype) };
}

/** Explains files that are not a torch >= 1.6 zip checkpoint instead of failing on a missing zip record. */
async function rejectNonZip(fh: FileHandle, path: string): Promise<void> {
  const head = new Uint8Array(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0);
  if (bytesRead >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return;
  const legacy =
    'the legacy torch.save format (torch < 1.6), which is not supported: re-save it with torch >= 1.6 (`torch.save(torch.load(f), f)`) or convert it to safetensors';
  if (bytesRead >= 2 && head[0] === 0x80 && head[1] <= 5) throw new Error(`${path}: ${legacy}`);
  if (bytesRead >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === 'ustar') throw new Error(`${path}: ${legacy}`);
  throw new Error(`${path}: not a torch.save zip archive (${bytesRead === 0 ? 'empty file' : 'no zip signature at the start'})`);
}

/** Loads every tensor of a `torch.save` zip checkpoint; floats are widened to Float32Array as in safetensors. */
export async function readTorchCheckpoint(path: string): Promise<Map<string, LoadedTensor>> {
  const fh = await open(path, 'r');
  try {
    await rejectNonZip(fh, path);
    const members = await readZipDirectory(fh, path);
    const pickleName = [...members.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (!pickleName) throw new Error(`${path}: zip archive without <name>/data.pkl: not a torch.save checkpoint`);
    const prefix = pickleName.slice(0, -'data.pkl'.length);
    const byteorder = members.get(`${prefix}byteorder`);
    if (byteorder) {
      const order = new Uint8Array(byteorder.size);
      await readExactly(fh, path, order, byteorder.dataOffset, 'the byteorder record');
      if (new TextDecoder().decode(order).trim() !== 'little') throw new Error(`${path}: big-endian checkpoints are not supported`);
    }
    const pickleMember = members.get(pickleName)!;
    const pickle = new Uint8Array(pickleMember.size);
    await readExactly(fh, path, pickle, pickleMember.dataOffset, pickleName);

    const storages = new Map<string, Storage>();
    const persistentLoad = (pid: unknown): Storage => {
      if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof StorageType) || typeof pid[2] !== 'string') {
        throw new Error('unknown persistent id (expected a ("storage", torch.<Type>Storage, key, location, numel) tuple)');
      }
      const [, type, key, , numel] = pid as [string, StorageType, string, unknown, unknown];
      const known = storages.get(key);
      if (known) return known;
      const member = members.get(`${prefix}data/${key}`);
      if (!member) throw new Error(`storage "${key}" has no member ${prefix}data/${key} in the archive (truncated or corrupt)`);
      if (!Number.isSafeInteger(numel)) throw new Error(`storage "${key}" has a bad element count ${String(numel)}`);
      const bytes = (numel as number) * DTYPE_BYTES[type.dtype];
      if (member.size < bytes)
        throw new Error(`storage "${key}" (${type.name}, ${numel} elements) has only ${member.size} bytes (truncated)`);
      const storage = new Storage(key, type.dtype, member, bytes);
      storages.set(key, storage);
      return storage;
    };
    const root = unpickle(pickle, { findClass, persistentLoad }, `${path} (${pickleName})`);
    if (!(root instanceof Map))
      throw new Error(`${path}: the pickle holds ${Array.isArray(root) ? 'a list' : typeof root}, not a state dict`);

    const tensors = new Map<string, LoadedTensor>();
    // Tied weights (`state_dict()` detaches each name separately) are identical views of one storage.
    const read = new Map<string, LoadedTensor>();
    for (const [name, value] of root) {
      if (typeof name !== 'string') throw new Error(`${path}: state dict key ${String(name)} is not a string`);
      if (!(value instanceof TensorView)) {
        throw new Error(
          `${path}: state dict entry "${name}" is not a tensor (a full checkpoint rather than a state dict? save model.state_dict())`,
        );
      }
      const viewKey = JSON.stringify([value.storage.key, value.dtype, value.offset, value.shape, value.stride]);
      let tensor = read.get(viewKey);
      if (!tensor) {
        tensor = await readView(fh, path, name, value);
        read.set(viewKey, tensor);
      }
      tensors.set(name, tensor);
    }
    return tensors;
  } finally {
    await fh.close();
  }
}
