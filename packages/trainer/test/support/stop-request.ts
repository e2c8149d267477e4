/**
 * `node --import tsx stop-request.ts MODE`: a StopRequest in a process of its own, for signals sent for real.
 *   busy    on the first signal, prints "first", then holds the thread 3 s (a long step) and prints "survived";
 *   queued  sends itself SIGINT and SIGTERM while holding the thread, so that both wait for the listener together.
 */
import { StopRequest } from '../../src/stop.ts';

const hold = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until);
};
const stop = new StopRequest({
  onFirst: (signal) => console.log(`first ${signal}`),
  onSecond: (signal) => {
    console.log(`second ${signal}`);
    process.exit(StopRequest.exitCode(signal));
  },
});
if (process.argv[2] === 'queued') {
  process.kill(process.pid, 'SIGINT');
  process.kill(process.pid, 'SIGTERM');
  hold(300);
} else {
  console.log('ready');
  await new Promise<void>((resolve) => {
    const wait = setInterval(() => {
      if (stop.signal === null) return;
      clearInterval(wait);
      resolve();
    }, 5);
  });
  await new Promise((resolve) => setImmediate(resolve)); // the listeners are gone now
  hold(3000);
  console.log('survived');
}
await new Promise((resolve) => setTimeout(resolve, 100));
