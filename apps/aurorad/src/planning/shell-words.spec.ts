import { ShellWordsError, shellWords } from './shell-words';

describe('shellWords', () => {
  it('splits on whitespace and honours single quotes, double quotes and backslashes', () => {
    expect(shellWords(`python3 -c 'print("hi there")'`)).toEqual(['python3', '-c', 'print("hi there")']);
    expect(shellWords(`echo "a b"  c\\ d 'e'"f"`)).toEqual(['echo', 'a b', 'c d', 'ef']);
    expect(shellWords(`echo "it's" 'say "x"' "q\\"q"`)).toEqual(['echo', "it's", 'say "x"', 'q"q']);
    expect(shellWords(`\n  ls\t-l  /work  \n`)).toEqual(['ls', '-l', '/work']);
  });

  it('keeps empty quoted words', () => {
    expect(shellWords(`printf '%s|' '' ""`)).toEqual(['printf', '%s|', '', '']);
  });

  it('keeps variables exactly as written, quoted or not', () => {
    expect(shellWords('echo $HOME')).toEqual(['echo', '$HOME']);
    expect(shellWords('echo "$HOME" \'$HOME\'')).toEqual(['echo', '$HOME', '$HOME']);
    expect(shellWords('echo ${HOME} "${A}x" ${A:-default} $1 $@ $?')).toEqual([
      'echo',
      '${HOME}',
      '${A}x',
      '${A:-default}',
      '$1',
      '$@',
      '$?',
    ]);
    expect(shellWords('echo \\$HOME "\\$HOME"')).toEqual(['echo', '$HOME', '$HOME']);
    expect(shellWords('echo $* $# "$?" x$?y')).toEqual(['echo', '$*', '$#', '$?', 'x$?y']);
    expect(shellWords('echo "$(date)" `date`')).toEqual(['echo', '$(date)', '`date`']);
  });

  it('passes operators and globs through when they are quoted or escaped', () => {
    expect(shellWords(`echo '|' "a && b" \\; '*.txt' "#x" a\\|b`)).toEqual([
      'echo',
      '|',
      'a && b',
      ';',
      '*.txt',
      '#x',
      'a|b',
    ]);
  });

  it.each([
    ['ls | wc -l', '|'],
    ['make; make install', ';'],
    ['true && false', '&&'],
    ['a || b', '||'],
    ['echo hi > out.txt', '>'],
    ['sort < in.txt', '<'],
    ['sleep 10 &', '&'],
    ['(cd /tmp)', '('],
    ['cmd 2>&1', '>&'],
    ['echo $(date)', '('],
  ])('refuses the shell operator in %j', (text, op) => {
    expect(() => shellWords(text)).toThrow(ShellWordsError);
    expect(() => shellWords(text)).toThrow(`shell operator "${op}"`);
    expect(() => shellWords(text)).toThrow('is not supported: the command is run directly, not by a shell');
  });

  it('says where the operator is', () => {
    expect(() => shellWords('ls -l /work | wc -l')).toThrow(
      'shell operator "|" after "ls -l /work" (word 4) is not supported',
    );
    expect(() => shellWords('| wc')).toThrow(
      'shell operator "|" at the start of the command is not supported',
    );
  });

  it('refuses globs, which no shell will expand', () => {
    expect(() => shellWords('ls *.txt')).toThrow('glob "*.txt" after "ls" (word 2) is not supported');
    expect(() => shellWords('ls file?')).toThrow(ShellWordsError);
  });

  it('refuses comments', () => {
    expect(() => shellWords('echo hi # greeting')).toThrow(
      'comment "# greeting" after "echo hi" (word 3) is not supported',
    );
  });

  it('refuses unbalanced quotes, which shell-quote would silently accept', () => {
    expect(() => shellWords(`'abc`)).toThrow("unbalanced quote: the ' at position 0 is never closed");
    expect(() => shellWords(`echo "abc`)).toThrow('unbalanced quote: the " at position 5 is never closed');
    expect(() => shellWords(`abc'def`)).toThrow(ShellWordsError);
    expect(() => shellWords(`echo "it's`)).toThrow('the " at position 5 is never closed');
  });

  it('refuses an unquoted line break, which a shell reads as a command separator', () => {
    expect(() => shellWords('ls\nrm -rf /work')).toThrow(
      'a line break at position 2 is not supported: in a shell it would start another command',
    );
    expect(shellWords('echo "a\nb"')).toEqual(['echo', 'a\nb']);
    expect(shellWords('echo a \\\nb\n')).toEqual(['echo', 'a', 'b']);
  });

  it('refuses a trailing lone backslash', () => {
    expect(() => shellWords('echo a \\')).toThrow('the command ends with a lone backslash at position 7');
  });

  it('refuses an empty command and NUL', () => {
    expect(() => shellWords('')).toThrow('the command is empty');
    expect(() => shellWords('   \n ')).toThrow('the command is empty');
    expect(() => shellWords('echo a\0b')).toThrow('the command contains NUL at position 6');
  });
});
