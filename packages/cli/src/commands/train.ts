/**
 * `kotune train --config FILE.json [--key value ...] [--dry-run] [--resume [DIR]]`
 *
 * Every config key can be given on the command line (`--learning_rate 1e-5`), parsed to the key's type;
 * command-line values win over the file's.
 */
import { configHelp, ConfigError, formatPlan, loadTrainConfig, modelConfigHelp, parseOverrides, planTraining, train } from '@kotune/trainer';
import { commandUsage, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

const SYNOPSIS = '--config FILE.json [--key value ...] [--dry-run] [--resume [DIR]]';
const FLAGS: Flags = {
  config: { type: 'string', help: 'training config (JSON; keys starting with "_" are comments)' },
  'dry-run': { type: 'boolean', help: 'check the config and data, print the plan, load no model' },
  resume: { type: 'string', help: 'continue from the newest checkpoint in output_dir, or from checkpoint DIR' },
};

function usage(): string {
  return `${commandUsage('train', SYNOPSIS, FLAGS)}\n\nconfig keys (also --key value on the command line) [default]:\n${configHelp()}\n\n` +
    `model_config keys (a fresh model's config.json; vocab_size and the special ids default to the tokenizer's) [default]:\n${modelConfigHelp()}`;
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
      throw new CliError(problems.length === 1 ? `train: ${problems[0]}` : `train: ${problems.length} problems:\n  ${problems.join('\n  ')}`);
    }
    throw error;
  }
  if (dryRun) {
    const plan = await planTraining(config);
    console.log(formatPlan(config, plan));
    console.log('dry run: config and data are valid; no model loaded');
    return;
  }
  await train(config);
}
