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

/** What a failed file-system call means, in words, for the errno codes a user meets (no raw `ENOENT: ...`). */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  ENOTEMPTY: 'the folder is not empty',
  ENOSPC: 'no space left on the disk',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'the file is busy',
  EIO: 'input/output error (a disk or network fault)',
  EXDEV: 'cannot move across file systems',
};

/**
 * The reason of a Node file-system error as a phrase (`no such file or folder`), or null when `error` is none;
 * unknown codes keep Node's description without the code (`ESOMETHING: what, open 'x'` → `what`).
 */
export function fileErrorReason(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return null;
  return FILE_ERRORS[code] ?? (error as Error).message.replace(/^E[A-Z]+: /, '').replace(/, \w+ '.*$/, '');
}

/** A Node file-system error as a sentence naming its path: `/out/model.safetensors: no such file or folder`; null for other errors. */
export function describeFileError(error: unknown): string | null {
  const reason = fileErrorReason(error);
  if (reason === null) return null;
  const { path, dest } = error as NodeJS.ErrnoException & { dest?: string };
  return path ? `${path}${dest ? ` -> ${dest}` : ''}: ${reason}` : reason;
}

/**
 * `text` with every Node file-system error inside it put into words: `cannot read (ENOENT: no such file or
 * directory, open '/x')` → `cannot read (no such file or folder)`. The CLI's last line of defence for messages
 * that quote an error; the error's own message is better worded where it is thrown.
 */
export function wordFileErrors(text: string): string {
  return text.replace(/\b(E[A-Z]{2,}): [^,()\n]+(, \w+ '[^'\n]*'( -> '[^'\n]*')?)?/g, (whole, code: string) => FILE_ERRORS[code] ?? whole);
}
