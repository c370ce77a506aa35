// The `srgan` command line: finds the command, parses its flags (--help on each), runs it. Errors print
// their code and message and exit 1; usage errors exit 2. Nothing runs on import: bin/srgan.js calls run().

import { parseArgs } from 'node:util';
import { prepareCommand } from './prepare.js';
import { daemonCommands } from './daemon-commands.js';
import { runsCommands } from './runs-commands.js';
import { useCommands } from './use-commands.js';
import { queueCommand } from './queue.js';
import { workerCommand } from './worker.js';
import type { Command } from './flags.js';

/** Every command, in the order `srgan --help` lists them. */
export const COMMANDS: Readonly<Record<string, Command>> = Object.freeze({
  prepare: prepareCommand,
  ...daemonCommands,
  ...runsCommands,
  ...useCommands,
  queue: queueCommand,
  worker: workerCommand,
});

function usage(): string {
  const lines = ['usage: srgan <command> [options]', '', 'commands:'];
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(width)}  ${c.summary}`);
  lines.push('', 'State lives in $SRGAN_HOME (default ~/.srgan). `srgan <command> --help` for its options.');
  return lines.join('\n');
}

function commandHelp(name: string, c: Command): string {
  const lines = [`usage: ${c.usage}`, '', c.summary, ''];
  const width = Math.max(16, ...Object.keys(c.help).map((f) => f.length));
  for (const [flag, text] of Object.entries(c.help)) lines.push(`  ${flag.padEnd(width)} ${text}`);
  lines.push(`  ${'--help'.padEnd(width)} show this help`);
  return lines.join('\n') + (name === 'start' ? '\n' : '');
}

/** Runs `srgan ARGV…` and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`srgan: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: Boolean(command.positionals),
      strict: true,
    });
    const [min, max] = command.positionals ?? [0, 0];
    const args = parsed.positionals;
    if (!parsed.values.help && args.length < min)
      throw new Error(`expected ${min === 1 ? 'a RUN argument' : `at least ${min} RUN arguments`}, got ${args.length}`);
    if (!parsed.values.help && args.length > max)
      throw new Error(`unexpected argument${args.length - max > 1 ? 's' : ''} ${args.slice(max).join(' ')}`);
  } catch (err) {
    console.error(`srgan ${name}: ${(err as Error).message}\n\n${commandHelp(name, command)}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(commandHelp(name, command));
    return 0;
  }
  return command.run(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals);
}

/** The process entry: runs `argv` and sets the exit code. */
export function run(argv: string[]): Promise<void> {
  return main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const e = err as Error & { code?: string };
      console.error(`srgan: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`);
      process.exitCode = 1;
    },
  );
}
