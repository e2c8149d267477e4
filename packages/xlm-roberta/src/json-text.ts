/**
 * JSON text as Python's `json.dumps(value, indent=2)` writes it, so that the config files of a saved folder
 * are byte-identical to those transformers and sentence-transformers write: floats in Python's `repr`
 * (`1e-05`, not `0.00001`), non-ASCII characters escaped (`ensure_ascii`), a final newline.
 */
export function pythonJsonText(value: unknown, { sortKeys = false } = {}): string {
  return `${format(value, '', sortKeys)}\n`;
}

function format(value: unknown, indent: string, sortKeys: boolean): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return pythonFloat(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string')
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + format(v, inner, sortKeys)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (sortKeys) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${inner}${format(k, inner, sortKeys)}: ${format(v, inner, sortKeys)}`).join(',\n')}\n${indent}}`;
}

/**
 * Python's float repr: the shortest round-trip digits (the same digits JavaScript picks), in scientific
 * notation when the decimal exponent is below -4 or at least 16, with a two-digit signed exponent.
 * Whole numbers print as integers: after `JSON.parse` there is no telling `1` from `1.0`.
 */
function pythonFloat(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`cannot write ${x} as JSON`);
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return String(x);
  const [mantissa, exp] = x.toExponential().split('e') as [string, string];
  const exponent = Number(exp);
  if (exponent < -4 || exponent >= 16) return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  return String(x);
}
