import type { Command } from 'commander';

export function registerPull(program: Command): void {
  program.command('pull').description('(not yet available)');
}
