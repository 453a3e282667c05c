import { parseArgs, type ParseArgsConfig } from "node:util";

/** A parseArgs option, plus what --help says about it. */
export type CliOption = NonNullable<ParseArgsConfig["options"]>[string] & {
  help: string;
  /** Placeholder for the value in --help, e.g. "HOST:PORT". */
  arg?: string;
};

type Values<O extends Record<string, CliOption>> = ReturnType<typeof parseArgs<{ options: O }>>["values"];

/**
 * parseArgs for the command-line entry points. It adds -h/--help (usage with every option
 * and its default, exit 0) and turns a bad command line into one line on stderr and exit 2:
 * parseArgs throws a TypeError, which would otherwise end the process with a stack trace.
 */
export function parseCli<O extends Record<string, CliOption>>(
  prog: string,
  usage: string,
  options: O,
  args: string[] = process.argv.slice(2),
): Values<O> {
  let values: Record<string, unknown>;
  try {
    // parseArgs ignores the extra `help` and `arg` keys of each option.
    ({ values } = parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } } }));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS_")) throw err;
    const message = (err as Error).message;
    const unknown = code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" ? /'([^']+)'/.exec(message)?.[1] : undefined;
    console.error(`${prog}: ${unknown ? `unknown option ${unknown}` : message} (see --help)`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(helpText(usage, options));
    process.exit(0);
  }
  return values as Values<O>;
}

export function helpText(usage: string, options: Record<string, CliOption>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.arg ? ` ${o.arg}` : ""}`;
    // Booleans default to off, and an empty list is no default worth printing.
    const shown = o.type === "string" && o.default !== undefined && String(o.default) !== "";
    const text = `${o.help}${o.multiple ? " (repeatable)" : ""}${shown ? ` (default ${o.default})` : ""}`;
    return [flag, text];
  });
  rows.push(["-h, --help", "print this help and exit"]);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return `${usage.trim()}\n\noptions:\n${rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}\n`).join("")}`;
}
