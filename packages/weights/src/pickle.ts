/**
 * A pickle virtual machine for the data Python checkpoints hold (protocols 0-5, minus out-of-band buffers).
 * It never runs Python: a `GLOBAL` is resolved through `findClass`, which returns a JS stand-in (a function
 * for callables) or throws for anything not on the caller's allow-list, so an untrusted file cannot do more
 * than build plain data.
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint beyond 2^53), float → number,
 * str → string, bytes → Uint8Array, tuple and list → Array, dict → Map, set → Set.
 * Opcode reference: CPython Lib/pickletools.py.
 */

export interface UnpickleHooks {
  /** The value of `module.name`; throw (with a reason) for globals the caller does not allow. */
  findClass(module: string, name: string): unknown;
  /** Resolves a persistent id (`PERSID` / `BINPERSID`). */
  persistentLoad(pid: unknown): unknown;
}

/** A value whose `BUILD` state can be dropped: torch's OrderedDict `_metadata`, tensor attributes. */
export const IGNORES_STATE = Symbol('pickle.ignoresState');

const MARK = Symbol('pickle.mark');

export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks, source: string): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let opStart = 0;

  const fail = (message: string): never => {
    throw new Error(`${source}: pickle byte ${opStart}: ${message}`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.byteLength) fail(`needs ${n} more bytes but the pickle ends at ${bytes.byteLength} (truncated)`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.byteLength)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text argument (truncated)');
    const text = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const text = (n: number) => {
    try {
      return utf8.decode(take(n));
    } catch {
      return fail('invalid UTF-8 in a string');
    }
  };
  const pop = () => {
    if (stack.length === 0) fail('stack underflow (corrupt pickle)');
    const v = stack.pop();
    if (v === MARK) fail('unexpected MARK (corrupt pickle)');
    return v;
  };
  const top = () => {
    if (stack.length === 0) fail('stack underflow (corrupt pickle)');
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) fail('no MARK on the stack (corrupt pickle)');
    const items = stack.splice(at);
    items.shift();
    return items;
  };
  const littleEndianInt = (data: Uint8Array): number | bigint => {
    if (data.length === 0) return 0;
    let v = 0n;
    for (let i = data.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[i]!);
    if (data[data.length - 1]! & 0x80) v -= 1n << BigInt(8 * data.length);
    return narrow(v);
  };
  const narrow = (v: bigint): number | bigint =>
    v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  const call = (callable: unknown, args: unknown) => {
    if (typeof callable !== 'function') fail(`${describe(callable)} is not callable`);
    if (!Array.isArray(args)) fail(`call arguments must be a tuple, got ${describe(args)}`);
    return (callable as (...a: unknown[]) => unknown)(...(args as unknown[]));
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) fail(`SETITEMS on ${describe(dict)}, not a dict`);
    if (items.length % 2) fail('odd number of items for SETITEMS');
    for (let i = 0; i < items.length; i += 2) (dict as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const appendItems = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list)) fail(`APPENDS on ${describe(list)}, not a list`);
    (list as unknown[]).push(...items);
  };
  const findClass = (module: string, name: string) => {
    try {
      return hooks.findClass(module, name);
    } catch (err) {
      return fail((err as Error).message);
    }
  };

  const persistentLoad = (pid: unknown) => {
    try {
      return hooks.persistentLoad(pid);
    } catch (err) {
      return fail((err as Error).message);
    }
  };

  while (true) {
    opStart = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        const protocol = u8();
        if (protocol > 5) fail(`unsupported pickle protocol ${protocol}`);
        break;
      } // PROTO
      case 0x95:
        u64();
        break; // FRAME: framing is only a read-ahead hint
      case 0x2e: {
        // STOP
        const result = pop();
        if (stack.length) fail(`${stack.length} values left on the stack at STOP (corrupt pickle)`);
        return result;
      }
      case 0x28:
        stack.push(MARK);
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x8a:
        stack.push(littleEndianInt(take(u8())));
        break; // LONG1
      case 0x8b: {
        const n = i32();
        if (n < 0) fail('negative LONG4 length');
        stack.push(littleEndianInt(take(n)));
        break;
      } // LONG4
      case 0x49: {
        // INT (protocol 0; "00"/"01" are False/True)
        const t = line();
        stack.push(t === '00' ? false : t === '01' ? true : narrow(BigInt(t)));
        break;
      }
      case 0x4c:
        stack.push(narrow(BigInt(line().replace(/L$/, ''))));
        break; // LONG
      case 0x47: {
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      } // BINFLOAT (big-endian)
      case 0x46:
        stack.push(Number.parseFloat(line()));
        break; // FLOAT
      case 0x58:
        stack.push(text(u32()));
        break; // BINUNICODE
      case 0x8c:
        stack.push(text(u8()));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(text(u64()));
        break; // BINUNICODE8
      case 0x56:
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => String.fromCharCode(parseInt(h, 16))));
        break; // UNICODE
      case 0x54: {
        const n = i32();
        if (n < 0) fail('negative BINSTRING length');
        stack.push(new TextDecoder('latin1').decode(take(n)));
        break;
      } // BINSTRING
      case 0x55:
        stack.push(new TextDecoder('latin1').decode(take(u8())));
        break; // SHORT_BINSTRING
      case 0x42:
        stack.push(take(u32()).slice());
        break; // BINBYTES
      case 0x43:
        stack.push(take(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x8e:
      case 0x96:
        stack.push(take(u64()).slice());
        break; // BINBYTES8, BYTEARRAY8
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x74:
        stack.push(popMark());
        break; // TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x61: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        appendItems(top(), items);
        break;
      } // APPENDS
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        const items = popMark();
        const d = new Map();
        setItems(d, items);
        stack.push(d);
        break;
      } // DICT
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`ADDITEMS on ${describe(s)}, not a set`);
        for (const item of items) (s as Set<unknown>).add(item);
        break;
      }
      case 0x91:
        stack.push(new Set(popMark()));
        break; // FROZENSET
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x70:
        memo.set(Number(line()), top());
        break; // PUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68:
      case 0x6a:
      case 0x67: {
        // BINGET, LONG_BINGET, GET
        const key = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(key)) fail(`memo key ${key} was never stored (corrupt pickle)`);
        stack.push(memo.get(key));
        break;
      }
      case 0x63: {
        const module = line();
        const name = line();
        stack.push(findClass(module, name));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(findClass(module as string, name as string));
        break;
      }
      case 0x52: {
        const args = pop();
        const callable = pop();
        stack.push(call(callable, args));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        const target = obj as { [IGNORES_STATE]?: boolean; __setstate__?: (s: unknown) => void } | null;
        if (target && typeof target === 'object' && typeof target.__setstate__ === 'function') target.__setstate__(state);
        else if (!(target && typeof target === 'object' && (target instanceof Map || target[IGNORES_STATE]))) {
          fail(`cannot set the state of ${describe(obj)}`);
        }
        break;
      }
      case 0x51:
        stack.push(persistentLoad(pop()));
        break; // BINPERSID
      case 0x50:
        stack.push(persistentLoad(line()));
        break; // PERSID
      default:
        fail(
          `unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} (corrupt pickle, or a Python object this reader does not know)`,
        );
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return `a tuple/list of ${value.length}`;
  if (value instanceof Map) return 'a dict';
  if (typeof value === 'function') return `the global ${value.name}`;
  return typeof value === 'object' ? (value.constructor?.name ?? 'an object') : `${typeof value} ${String(value)}`;
}
