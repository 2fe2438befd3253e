import type { Command } from 'commander';

export function registerClone(program: Command): void {
  program.command('clone').description('(not yet available)');
}
