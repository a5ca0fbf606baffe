/** The longest line (one `data:` payload) accepted from an event stream, so a broken peer cannot exhaust memory. */
export const MAX_SSE_LINE_BYTES = 4 * 1024 * 1024;

/**
 * Incremental decoder of a `text/event-stream` body (the WHATWG server-sent events format, which
 * OpenAI-compatible servers use for `stream: true`): feed it bytes as they arrive and it returns the
 * `data` of every event completed so far. Comments (`: keep-alive`) and fields other than `data` are
 * skipped; a multi-line `data` is joined with newlines, as the format says.
 */
export class SseDecoder {
  private readonly text = new TextDecoder();
  private pending = '';
  private data: string[] = [];

  /** Throws when a line grows past MAX_SSE_LINE_BYTES. */
  push(chunk: Uint8Array): string[] {
    this.pending += this.text.decode(chunk, { stream: true });
    const events: string[] = [];
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, newline);
      this.pending = this.pending.slice(newline + 1);
      this.line(line.endsWith('\r') ? line.slice(0, -1) : line, events);
    }
    if (this.pending.length > MAX_SSE_LINE_BYTES)
      throw new Error(`an event stream line is longer than ${MAX_SSE_LINE_BYTES} bytes`);
    return events;
  }

  /** The end of the body: an event not followed by a blank line still counts. */
  end(): string[] {
    const events: string[] = [];
    this.pending += this.text.decode();
    if (this.pending) this.line(this.pending, events);
    this.pending = '';
    this.line('', events);
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    const value = colon < 0 ? '' : line.slice(colon + 1);
    this.data.push(value.startsWith(' ') ? value.slice(1) : value);
  }
}
