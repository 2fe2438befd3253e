/** The fault proxy lives in src/faults (the demo and the reliability runner use it too). */
export * from '../../src/faults/fault-proxy.js';
