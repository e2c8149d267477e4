import type { FileHandle } from 'node:fs/promises';

/** Fills `target` from file offset `position`, or throws naming the file: a short read means truncation. */
export async function readExactly(fh: FileHandle, path: string, target: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const { bytesRead } = await fh.read(target, done, target.byteLength - done, position + done);
    if (bytesRead === 0) {
      throw new Error(
        `${path}: file ends at byte ${position + done} while reading ${what} (${target.byteLength} bytes at offset ${position}); the file is truncated`,
      );
    }
    done += bytesRead;
  }
}
