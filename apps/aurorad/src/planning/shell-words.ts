import { parse, type ParseEntry } from 'shell-quote';

/**
 * A command line that cannot become an argv without a shell: an operator, a glob, a comment, an
 * unbalanced quote, or nothing at all.
 */
export class ShellWordsError extends Error {
  override readonly name = 'ShellWordsError';
}

/**
 * Splits a command line into words as a POSIX shell would quote them (`'…'`, `"…"`, `\`), without ever
 * running a shell: the words become a job's argv, executed directly. Whatever only a shell could give
 * meaning to (pipes, redirections, `;`, `&&`, `&`, subshells, globs, comments) is refused rather than
 * silently passed as a literal argument, because the user would expect the shell's behaviour. Variables
 * (`$HOME`, `${HOME}`) stay exactly as written: there is no environment to expand them from.
 */
export function shellWords(text: string): string[] {
  if (text.includes('\0'))
    throw new ShellWordsError(`the command contains NUL at position ${text.indexOf('\0')}`);
  // Even with an env callback that returns `$NAME`, shell-quote rewrites `${A}x` to `$Ax` and `${A:-x}` to
  // `$A:-x`, so every `$` a shell would expand is escaped before parsing and the word holds the text as
  // written. The callback stays as a fallback that keeps a variable literal, never empty.
  const escaped = escapeDollars(text);
  const entries = parse(escaped, (name) => `$${name}`);
  const words: string[] = [];
  for (const entry of entries) {
    if (typeof entry === 'string') {
      words.push(entry);
      continue;
    }
    throw new ShellWordsError(`${describe(entry)} ${where(words)} is not supported: ${remedy(entry)}`);
  }
  if (words.length === 0) throw new ShellWordsError('the command is empty');
  return words;
}

type Special = Exclude<ParseEntry, string>;

function describe(entry: Special): string {
  if ('comment' in entry) return `comment "#${entry.comment}"`;
  if (entry.op === 'glob') return `glob "${entry.pattern}"`;
  return `shell operator "${entry.op}"`;
}

function remedy(entry: Special): string {
  const direct = 'the command is run directly, not by a shell';
  if ('comment' in entry) return `${direct}; quote the "#" ('#') to pass it as an argument`;
  if (entry.op === 'glob') return `${direct}, so nothing expands it; quote it to pass it literally`;
  return `${direct}; quote it to pass it as an argument`;
}

function where(words: readonly string[]): string {
  if (words.length === 0) return 'at the start of the command';
  const before = words.slice(-3).join(' ');
  return `after "${words.length > 3 ? '… ' : ''}${before}" (word ${words.length + 1})`;
}

/**
 * Returns `text` with every `$` a shell would expand (outside single quotes, not already escaped) made
 * literal, after checking that every quote is closed, that no unquoted line break separates commands and
 * that the text does not end in a lone backslash: shell-quote accepts all of these silently (`'abc`
 * parses as `abc`, a line break as a space), which would run something other than what was typed.
 */
function escapeDollars(text: string): string {
  let out = '';
  let quote: "'" | '"' | undefined;
  let quoteAt = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      out += c;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= text.length)
        throw new ShellWordsError(
          `the command ends with a lone backslash at position ${i}: nothing follows it to escape`,
        );
      // A backslash before a newline continues the line, as in a shell (shell-quote would make an empty word).
      if (text[i + 1] !== '\n') out += c + text[i + 1]!;
      i++;
      continue;
    }
    if (c === '\n' && quote === undefined && text.slice(0, i).trim() !== '' && text.slice(i).trim() !== '')
      throw new ShellWordsError(
        `a line break at position ${i} is not supported: in a shell it would start another command, and the command is run directly, not by a shell; quote it to pass it as an argument`,
      );
    if (c === '$') {
      // `$?`, `$*` and `$#` are variables, but shell-quote would see a glob or a comment after the `$`.
      const next = text[i + 1];
      if (quote === undefined && (next === '?' || next === '*' || next === '#')) {
        out += `'$${next}'`;
        i++;
      } else out += '\\$';
      continue;
    }
    if (c === '"' || c === "'") {
      if (quote === undefined) {
        quote = c;
        quoteAt = i;
      } else if (quote === c) quote = undefined;
    }
    out += c;
  }
  if (quote !== undefined)
    throw new ShellWordsError(`unbalanced quote: the ${quote} at position ${quoteAt} is never closed`);
  return out;
}
