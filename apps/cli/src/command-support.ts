import { type Command, InvalidArgumentError } from 'commander';
import { AetherClient } from '@aether/client';
import { EX_USAGE, parseKeyValue, UsageError } from './units';

/** The client for a command, from the global `--config`. */
export const clientOf = (cmd: Command): AetherClient =>
  AetherClient.fromConfig(cmd.optsWithGlobals<{ config: string }>().config);

/** Runs `fn` with a client for this command and closes it afterwards. */
export async function withClient<T>(cmd: Command, fn: (c: AetherClient) => Promise<T>): Promise<T> {
  const c = clientOf(cmd);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** A pure parser as a commander option parser: a bad value is a usage error (exit 64). */
export function arg<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (err) {
      const e = new InvalidArgumentError((err as Error).message);
      e.exitCode = EX_USAGE;
      throw e;
    }
  };
}

/** Like {@link arg} for a repeatable option: the values collect into a list. */
export function list<T>(parse: (v: string) => T): (v: string, prev: T[] | undefined) => T[] {
  const one = arg(parse);
  return (v, prev) => [...(prev ?? []), one(v)];
}

/** A repeatable `KEY=VALUE` option collecting into a map; with `fromEnv`, a bare `KEY` passes ours on. */
export function collectPairs(
  what: string,
  fromEnv = false,
): (v: string, prev: Record<string, string> | undefined) => Record<string, string> {
  const one = arg((v: string): [string, string] => {
    if (fromEnv && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)) {
      const value = process.env[v];
      if (value === undefined) throw new UsageError(`${what} ${v} is not set here; pass ${v}=VALUE`);
      return [v, value];
    }
    return parseKeyValue(v, what);
  });
  return (v, prev) => {
    const [k, val] = one(v);
    return { ...(prev ?? {}), [k]: val };
  };
}

/** Stops writing quietly when the reader of our output goes away (`aether jobs logs x | head`, `aether events watch | head`). */
export function exitOnClosedPipe(): void {
  for (const s of [process.stdout, process.stderr])
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
}

/** Exit status after Ctrl-C detached from something that goes on without us (128 + SIGINT). */
export const EX_DETACHED = 130;

/**
 * Ctrl-C while following something that keeps running (a job, an intent): run `before` (e.g. clear a
 * spinner), print `message` (how to get back to it) on stderr, exit 130. Returns how to stop listening.
 */
export function detachOnInterrupt(message: string, before: () => void = () => undefined): () => void {
  const onInterrupt = (): void => {
    before();
    process.stderr.write(message);
    process.exit(EX_DETACHED);
  };
  process.once('SIGINT', onInterrupt);
  return () => process.off('SIGINT', onInterrupt);
}

/** Pretty JSON on stdout. */
export const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

/**
 * Fetches one page, or every page when `all`: `fetch` gets the page token (empty for the first) and
 * returns that page's items and the next token. Returns the items and the token after the last page
 * fetched (empty when there are no more).
 */
export async function collectPages<T>(
  all: boolean | undefined,
  fetch: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>,
): Promise<{ items: T[]; nextPageToken: string }> {
  const items: T[] = [];
  let nextPageToken = '';
  do {
    const page = await fetch(nextPageToken);
    items.push(...page.items);
    nextPageToken = page.nextPageToken;
  } while (all && nextPageToken);
  return { items, nextPageToken };
}
