/**
 * An error in an input data file. The message starts with `<path as given>:<line>: ` (1-based physical
 * line, blank lines counted) so that editors and terminals can jump to it; `field` names the JSON field at
 * fault when there is one, and `reason` is a stable category used to count skipped lines.
 */
export class DataError extends Error {
  readonly path: string;
  readonly line: number | undefined;
  readonly field: string | undefined;
  readonly reason: string;
  /** The message without the `path:line: ` prefix. */
  readonly detail: string;

  constructor(path: string, line: number | undefined, detail: string, options: { field?: string; reason?: string } = {}) {
    super(line === undefined ? `${path}: ${detail}` : `${path}:${line}: ${detail}`);
    this.name = 'DataError';
    this.path = path;
    this.line = line;
    this.field = options.field;
    this.reason = options.reason ?? detail;
    this.detail = detail;
  }
}
