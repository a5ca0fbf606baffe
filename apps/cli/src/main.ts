#!/usr/bin/env node
import { errorText, exitCodeForError } from './errors';
import { buildProgram } from './program';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`aether: ${errorText(err)}\n`);
    process.exitCode = exitCodeForError(err);
  });
