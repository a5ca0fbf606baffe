/**
 * A file's text with the positions Cedar reports turned into line and column. Cedar counts UTF-8 bytes
 * from the start of the text it was given; editors count lines and characters from 1.
 */
export class SourceText {
  private readonly bytes: Buffer;
  private lineStarts: number[] | undefined;

  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    this.bytes = Buffer.from(text, 'utf8');
  }

  /** The string index of a UTF-8 byte offset (clamped to the text). */
  charIndex(byteOffset: number): number {
    const clamped = Math.max(0, Math.min(this.bytes.length, Math.trunc(byteOffset)));
    return this.bytes.subarray(0, clamped).toString('utf8').length;
  }

  /** Line and column (from 1) of a string index. */
  position(charIndex: number): { line: number; column: number } {
    const starts = (this.lineStarts ??= lineStartsOf(this.text));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((starts[mid] as number) <= charIndex) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: charIndex - (starts[lo] as number) + 1 };
  }

  /** Line and column (from 1) of a UTF-8 byte offset as Cedar reports it. */
  positionOfByte(byteOffset: number): { line: number; column: number } {
    return this.position(this.charIndex(byteOffset));
  }
}

function lineStartsOf(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}
