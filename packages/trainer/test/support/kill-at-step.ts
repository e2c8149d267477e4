/**
 * `node --import tsx kill-at-step.ts CONFIG STEP`: trains CONFIG and kills its own process with SIGKILL
 * right after optimizer step STEP (before that step's log line, eval or checkpoint), as a crash or
 * `kill -9` would stop it.
 */
import { loadTrainConfig, train } from '../../src/index.ts';

const [configPath, step] = process.argv.slice(2);
await train(loadTrainConfig(configPath!), {
  print: () => {},
  onStep: (done) => {
    if (done === Number(step)) process.kill(process.pid, 'SIGKILL');
  },
});
