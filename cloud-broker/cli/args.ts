import { parseArgs, type ParseArgsConfig } from 'node:util';
import { printError, type CliContext, type Command } from '../../protocol/cli.js';
import { OutpostError } from '../../protocol/errors/index.js';

export type FlagOptions = NonNullable<ParseArgsConfig['options']>;
export type FlagValues = Record<string, string | boolean | undefined>;

export interface Parsed {
  values: FlagValues;
  positionals: string[];
  json: boolean;
}

export interface CommandDef {
  /** The full help text: usage line, what it does, every flag. */
  usage: string;
  options: FlagOptions;
  /** Allowed number of positional arguments [min, max]. Default [0, 0]. */
  positionals?: [number, number];
  /** Rewrites argv before parsing (configure uses it for `--crop false`). */
  preprocess?: (argv: string[]) => string[];
  run: (args: Parsed, ctx: CliContext) => Promise<number>;
}

/** Flags every verb takes. */
export const COMMON_FLAGS: FlagOptions = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/**
 * Wraps a verb: `--help` prints the usage, `node:util` parseArgs in strict mode turns an unknown
 * flag or a missing value into USAGE (exit 2), and anything thrown is printed with its code.
 */
export function defineCommand(def: CommandDef): Command {
  return async (argv, ctx) => {
    const json = argv.includes('--json');
    if (argv.includes('--help') || argv.includes('-h')) {
      ctx.stdout.write(def.usage.endsWith('\n') ? def.usage : def.usage + '\n');
      return 0;
    }
    let parsed: Parsed;
    try {
      const { values, positionals } = parseArgs({
        args: def.preprocess ? def.preprocess(argv) : argv,
        options: { ...COMMON_FLAGS, ...def.options },
        allowPositionals: true,
        strict: true,
      });
      const [min, max] = def.positionals ?? [0, 0];
      if (positionals.length < min || positionals.length > max) {
        const want = min === max ? `${min}` : `${min} to ${max}`;
        throw new Error(
          `expected ${want} argument(s), got ${positionals.length}${positionals.length ? ` (${positionals.join(' ')})` : ''}`,
        );
      }
      parsed = { values: values as FlagValues, positionals, json: values.json === true };
    } catch (err) {
      const first = def.usage.split('\n')[0];
      return printError(
        ctx,
        json,
        new OutpostError('USAGE', `${(err as Error).message}\nusage: ${first}\n(run with --help for every flag)`),
      );
    }
    try {
      return await def.run(parsed, ctx);
    } catch (err) {
      return printError(ctx, parsed.json, err);
    }
  };
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Runs a parser on a command-line value; its failure is a usage error (exit 2), not bad input. */
export function usageOnError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const e = err as OutpostError;
    throw new OutpostError('USAGE', e.message, e.details);
  }
}
