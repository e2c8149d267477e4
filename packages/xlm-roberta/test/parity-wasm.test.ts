/** Model parity with the fixtures on the wasm backend (the cases live in parity.ts). */
import { test } from 'uvu';
import { registerParityTests } from './parity.ts';

registerParityTests('wasm');
test.run();
