/** Model parity with the fixtures on the cpu backend (the cases live in parity.ts). */
import { test } from 'uvu';
import { registerParityTests } from './parity.ts';

registerParityTests('cpu');
test.run();
