/** 16 hex digits of SHA-256 over the addon's sources (`*.cc`, `*.h`) in `dir`, in name order. */
export function sourceHash(dir: string): string;
