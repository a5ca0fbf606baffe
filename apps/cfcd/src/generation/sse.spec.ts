import { MAX_SSE_LINE_BYTES, SseDecoder } from './sse';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('SseDecoder', () => {
  it('returns each event’s data once its blank line arrives, however the bytes are split', () => {
    const text = 'data: {"a":1}\n\ndata: {"b":2}\r\n\r\ndata: [DONE]\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const d = new SseDecoder();
      const events = [...d.push(bytes(text.slice(0, cut))), ...d.push(bytes(text.slice(cut))), ...d.end()];
      expect(events).toEqual(['{"a":1}', '{"b":2}', '[DONE]']);
    }
  });

  it('keeps multi-byte characters split across chunks whole', () => {
    const all = bytes('data: {"t":"héllo ✓"}\n\n');
    const d = new SseDecoder();
    const events = [...d.push(all.slice(0, 14)), ...d.push(all.slice(14, 22)), ...d.push(all.slice(22))];
    expect(events).toEqual(['{"t":"héllo ✓"}']);
  });

  it('skips comments and other fields, joins multi-line data, and flushes an unterminated last event', () => {
    const d = new SseDecoder();
    expect(d.push(bytes(': keep-alive\nevent: message\nid: 3\ndata: line 1\ndata:line 2\n\n'))).toEqual([
      'line 1\nline 2',
    ]);
    expect(d.push(bytes('data: tail'))).toEqual([]);
    expect(d.end()).toEqual(['tail']);
  });

  it('refuses a line longer than the limit', () => {
    const d = new SseDecoder();
    expect(() => d.push(bytes(`data: ${'x'.repeat(MAX_SSE_LINE_BYTES)}`))).toThrow(/longer than/);
  });
});
