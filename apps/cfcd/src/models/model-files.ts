import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { newId } from '@aether/rpc';

/**
 * Model files, content-addressed: `<dir>/<hex>.onnx` for digest `sha256:<hex>`. A file is written to a
 * temporary name while it is hashed and renamed into place only once its digest is known (and checked).
 */
export class ModelFiles {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  pathOf(digest: string): string {
    return join(this.dir, `${digest.replace(/^sha256:/, '')}.onnx`);
  }

  /**
   * Writes the chunks to the store and returns the digest. With `expected` (a digest, or a function
   * asked once the chunks are read), a different digest throws DigestMismatchError and leaves nothing
   * behind.
   */
  async write(
    chunks: AsyncIterable<Uint8Array>,
    expected?: string | (() => string | undefined),
  ): Promise<{ digest: string; path: string }> {
    const tmp = join(this.dir, `.incoming-${newId()}`);
    const hash = createHash('sha256');
    const out = createWriteStream(tmp, { mode: 0o600 });
    try {
      for await (const chunk of chunks) {
        hash.update(chunk);
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      }
      out.end();
      await finished(out);
      const digest = `sha256:${hash.digest('hex')}`;
      const want = typeof expected === 'function' ? expected() : expected;
      if (want !== undefined && digest !== want) throw new DigestMismatchError(want, digest);
      const path = this.pathOf(digest);
      renameSync(tmp, path);
      return { digest, path };
    } catch (err) {
      out.destroy();
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Copies a local file into the store. */
  add(source: string): Promise<{ digest: string; path: string }> {
    return this.write(createReadStream(source));
  }

  remove(digest: string): void {
    rmSync(this.pathOf(digest), { force: true });
  }
}

export class DigestMismatchError extends Error {
  override readonly name = 'DigestMismatchError';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`the content's digest is ${actual}, not ${expected}`);
  }
}
