/**
 * `kotune train --config FILE.json [--key value ...] [--dry-run] [--resume [DIR]]`
 *
 * Every config key can be given on the command line (`--learning_rate 1e-5`), parsed to the key's type;
 * command-line values win over the file's.
 */
import {
  configHelp,
  ConfigError,
  formatPlan,
  loadTrainConfig,
  modelConfigHelp,
  parseOverrides,
  preflight,
  RunProblemsError,
  shellCommand,
  train,
  trainingMemoryOf,
  TrainingStoppedError,
} from '@kotune/trainer';
import { fitsWasm, formatEstimate } from '@kotune/engine';
import { commandUsage, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

const SYNOPSIS = '--config FILE.json [--key value ...] [--dry-run] [--resume [DIR]] [--overwrite_output_dir]';
const FLAGS: Flags = {
  config: { type: 'string', help: 'training config (JSON; keys starting with "_" are comments)' },
  'dry-run': {
    type: 'boolean',
    help: 'check the config, the model, output_dir and the data, print the plan, load no model, write nothing',
  },
  resume: { type: 'string', help: 'continue from the newest intact checkpoint in output_dir, or from checkpoint DIR' },
};

/** The flags of the command line that pick the run's start, dropped when the resume command is written. */
const START_FLAGS = /^--(resume|resume[_-]from[_-]checkpoint|overwrite[_-]output[_-]dir)(=|$)/;

/**
 * The command that continues a stopped run from `checkpoint`: this command line with `--resume checkpoint`
 * instead of any `--resume` or `--overwrite_output_dir`, started the way this one was (`pnpm kotune`, `kotune`).
 */
function resumeCommand(argv: string[], checkpoint: string): string {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!START_FLAGS.test(arg)) kept.push(arg);
    else if (!arg.includes('=') && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++; // its value
  }
  const viaScript = process.env.npm_lifecycle_event === 'kotune';
  const launcher = !viaScript ? 'kotune' : /pnpm/.test(process.env.npm_execpath ?? '') ? 'pnpm kotune' : 'npm run kotune --';
  return `${launcher} ${shellCommand(['train', ...kept, '--resume', checkpoint])}`;
}

function usage(): string {
  return (
    `${commandUsage('train', SYNOPSIS, FLAGS)}\n\nconfig keys (also --key value on the command line) [default]:\n${configHelp()}\n\n` +
    `model_config keys (a fresh model's config.json; vocab_size and the special ids default to the tokenizer's) [default]:\n${modelConfigHelp()}`
  );
}

export async function run(argv: string[]): Promise<void> {
  let configPath: string | null = null;
  let dryRun = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      console.log(usage());
      return;
    }
    if (arg === '--config' || arg.startsWith('--config=')) {
      configPath = arg.includes('=') ? arg.slice('--config='.length) : argv[++i];
      if (!configPath || configPath.startsWith('--')) throw new CliError(`train: --config needs a file\n\n${usage()}`);
    } else if (arg === '--dry-run') {
      dryRun = true;
    } else if (arg === '--resume') {
      // `--resume` alone: the newest checkpoint; `--resume DIR`: that one.
      const next = argv[i + 1];
      rest.push('--resume_from_checkpoint', next !== undefined && !next.startsWith('--') ? argv[++i] : 'true');
    } else if (arg.startsWith('--resume=')) {
      rest.push('--resume_from_checkpoint', arg.slice('--resume='.length));
    } else {
      rest.push(arg);
    }
  }
  let config;
  try {
    config = loadTrainConfig(configPath, { overrides: parseOverrides(rest) });
  } catch (error) {
    if (error instanceof ConfigError) {
      const { problems } = error;
      throw new CliError(
        problems.length === 1 ? `train: ${problems[0]}` : `train: ${problems.length} problems:\n  ${problems.join('\n  ')}`,
      );
    }
    throw error;
  }
  if (dryRun) {
    const { plan, problems, notes } = await preflight(config);
    if (plan) console.log(formatPlan(config, plan));
    for (const note of notes) console.log(`note: ${note}`);
    const memory = await trainingMemoryOf(config);
    if (memory)
      console.log(
        `memory: ${formatEstimate(memory)}: ${fitsWasm(memory) ? 'fits the wasm backend' : "more than wasm's 4 GB holds, so it runs on cpu"}`,
      );
    if (problems.length > 0) throw new RunProblemsError(problems);
    console.log('dry run: the config, model, output_dir and data are valid; no model loaded, nothing written');
    return;
  }
  try {
    await train(config);
  } catch (error) {
    if (!(error instanceof TrainingStoppedError)) throw error;
    console.error(`kotune: ${error.message}`);
    if (error.checkpoint) console.error(`resume with: ${resumeCommand(argv, error.checkpoint)}`);
    process.exitCode = error.exitCode;
  }
}
