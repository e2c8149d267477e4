/**
 * Thin wrapper over `node:util` parseArgs shared by every command: unknown flags and missing required
 * values become `CliError`s that name the flag, and `--help` prints the command's usage.
 */
import { parseArgs } from 'node:util';
import { CliError } from './errors.ts';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  required?: boolean;
  help: string;
}

export type Flags = Record<string, FlagSpec>;

/** Flags every command understands. */
const COMMON: Flags = {
  backend: {
    type: 'string',
    help: 'wasm | cpu | tensorflow | tensorflow-gpu (default: wasm, else cpu; tensorflow* need @tensorflow/tfjs-node(-gpu), see kotune doctor)',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export function commandUsage(command: string, synopsis: string, flags: Flags): string {
  const all = { ...flags, ...COMMON };
  const rows = Object.entries(all).map(([name, spec]) => {
    const left = `--${name}${spec.type === 'string' ? ' VALUE' : ''}`;
    const extra = spec.required ? ' (required)' : spec.default !== undefined ? ` (default ${spec.default})` : '';
    return `  ${left.padEnd(28)} ${spec.help}${extra}`;
  });
  return [`usage: kotune ${command} ${synopsis}`, '', ...rows].join('\n');
}

/**
 * Parses `argv` for `command`. Returns null when `--help` was given (the usage has been printed).
 */
export function parseCommandArgs(
  command: string,
  synopsis: string,
  flags: Flags,
  argv: string[],
  { allowPositionals = false } = {},
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } | null {
  const all = { ...flags, ...COMMON };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }> = {};
  for (const [name, spec] of Object.entries(all)) {
    options[name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
      ...(spec.default !== undefined ? { default: spec.default } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw new CliError(`${command}: ${(error as Error).message}\n\n${commandUsage(command, synopsis, flags)}`);
  }
  if (parsed.values.help) {
    console.log(commandUsage(command, synopsis, flags));
    return null;
  }
  for (const [name, spec] of Object.entries(flags)) {
    if (spec.required && parsed.values[name] === undefined) {
      throw new CliError(`${command}: --${name} is required\n\n${commandUsage(command, synopsis, flags)}`);
    }
  }
  return { values: parsed.values as Record<string, string | boolean | string[] | undefined>, positionals: parsed.positionals };
}

/** Reads an integer flag, with a clear error for anything that is not a positive whole number. */
export function intFlag(command: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${command}: --${name} must be a positive integer, got '${String(value)}'`);
  return n;
}
