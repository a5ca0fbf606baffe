#!/usr/bin/env node
import { buildProgram } from './program';

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`aether: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
