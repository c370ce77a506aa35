// Parsing of command-line flag values shared by every command; errors name the flag and what it got.

import type { ParseArgsConfig } from 'node:util';
import { SrganError } from '../util/errors.js';

/** Parsed flags of a command, as node:util parseArgs returns them. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** One `srgan` command: its help and what it runs. */
export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  help: Record<string, string>;
  /** How many positional arguments the command takes, [min, max]; none when absent. */
  positionals?: readonly [number, number];
  run(values: Values, positionals: string[]): Promise<number>;
}

/** The `--json` option every command that prints has. */
export const json = { type: 'boolean' } as const;

/**
 * An integer flag value (underscores are digit separators people type: "178_956_970"), at least `min`
 * when given; SRGAN_ERR_CONFIG naming the flag otherwise.
 */
export function intFlag(flag: string, v: Values[string], min?: number): number {
  const text = typeof v === 'string' ? v : String(v);
  const n = Number(text.replace(/_/g, ''));
  if (typeof v !== 'string' || text.trim() === '' || !Number.isInteger(n) || (min !== undefined && n < min)) {
    throw new SrganError('SRGAN_ERR_CONFIG', `${flag} must be an integer${min === undefined ? '' : ` >= ${min}`}, got "${text}"`);
  }
  return n;
}

/** A string flag's value, or undefined. */
export function str(v: Values[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A repeatable flag's values ([] when absent). */
export function list(v: Values[string]): string[] {
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}
