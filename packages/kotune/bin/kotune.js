#!/usr/bin/env node
// `kotune` in the repository (`npx kotune`, node_modules/.bin): runs the CLI from its TypeScript sources through
// tsx. The published package's bin is the compiled dist/bin.js instead (publishConfig).
import { register } from 'tsx/esm/api';

register();
await import('../src/bin.ts');
