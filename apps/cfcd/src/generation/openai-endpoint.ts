import type { ReadableStreamDefaultReader } from 'node:stream/web';
import { EndpointError } from './endpoint-error';
import { SseDecoder } from './sse';

/** What Generate asks for, in the endpoint's terms (validated and defaulted by the service). */
export interface GenerateParams {
  input:
    | { kind: 'prompt'; prompt: string }
    | { kind: 'chat'; messages: { role: 'system' | 'user' | 'assistant'; content: string }[] };
  maxTokens: number;
  temperature?: number;
  topP?: number;
  stop: string[];
  seed?: number;
  /** Ask for a JSON object answer (`response_format: {"type": "json_object"}`). */
  json: boolean;
}

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
}

export type FinishReason = 'stop' | 'length' | 'content_filter';

export interface GenerationEnd {
  finishReason: FinishReason;
  /** When the endpoint reported it (`stream_options.include_usage`). */
  usage?: TokenCounts;
}

export interface Embeddings {
  vectors: number[][];
  usage?: TokenCounts;
}

export interface EndpointOptions {
  /** Base URL including the version path, e.g. `http://127.0.0.1:8080/v1`. */
  baseUrl: string;
  /** The endpoint's name for the model. */
  model: string;
  /** Sent as `Authorization: Bearer`; undefined for none. */
  apiKey?: string;
  timeoutMs: number;
}

/** Largest JSON answer read whole (embeddings of 256 long texts fit comfortably). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** How much of an error answer is read, and how much of it is quoted back. */
const ERROR_BODY_BYTES = 8 * 1024;
const ERROR_EXCERPT_CHARS = 300;

const FINISH_REASONS: Record<string, FinishReason> = {
  stop: 'stop',
  eos: 'stop',
  length: 'length',
  content_filter: 'content_filter',
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One request to the endpoint: an AbortController that the caller's signal and the model's timeout both
 * abort, and I/O wrapped so that anything thrown by fetch or a body read becomes an EndpointError that
 * says which of the two (or the network) ended it.
 */
class UpstreamRequest {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private timedOut = false;
  private readonly onCallerAbort = (): void => this.controller.abort(this.caller.reason);

  constructor(
    readonly url: string,
    private readonly caller: AbortSignal,
    private readonly timeoutMs: number,
  ) {
    if (caller.aborted) this.controller.abort(caller.reason);
    else caller.addEventListener('abort', this.onCallerAbort, { once: true });
  }

  /** Runs one fetch or read under the timeout; failures become EndpointErrors. */
  async io<T>(what: string, op: () => Promise<T>): Promise<T> {
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new Error('timeout'));
    }, this.timeoutMs);
    try {
      return await op();
    } catch (err) {
      throw this.explain(err, what);
    } finally {
      clearTimeout(this.timer);
    }
  }

  /** Aborts whatever is still open (a no-op after a complete answer) and unhooks the caller's signal. */
  close(): void {
    clearTimeout(this.timer);
    this.caller.removeEventListener('abort', this.onCallerAbort);
    this.controller.abort(new Error('request finished'));
  }

  fail(kind: 'malformed', message: string, cause?: unknown): EndpointError {
    return new EndpointError(kind, this.url, `endpoint ${this.url} ${message}`, undefined, { cause });
  }

  private explain(err: unknown, what: string): EndpointError {
    if (err instanceof EndpointError) return err;
    if (this.caller.aborted)
      return new EndpointError(
        'cancelled',
        this.url,
        `the request to ${this.url} was aborted: ${reasonText(this.caller.reason)}`,
        undefined,
        { cause: err },
      );
    if (this.timedOut)
      return new EndpointError(
        'timeout',
        this.url,
        `endpoint ${this.url} gave no ${what} within ${this.timeoutMs} ms`,
        undefined,
        { cause: err },
      );
    return new EndpointError(
      'unreachable',
      this.url,
      `endpoint ${this.url} cannot be reached: ${networkText(err)}`,
      undefined,
      { cause: err },
    );
  }
}

function reasonText(reason: unknown): string {
  const message = (reason as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(reason);
}

/**
 * undici's `fetch failed` hides the useful part (`connect ECONNREFUSED 127.0.0.1:8080`) in its cause.
 * Duck-typed: errors from another realm (a test sandbox) are not `instanceof Error` here.
 */
function networkText(err: unknown): string {
  const messageOf = (e: unknown): string | undefined => {
    if (typeof e !== 'object' || e === null) return undefined;
    const { message, code } = e as { message?: unknown; code?: unknown };
    if (typeof message === 'string' && message) return message;
    return typeof code === 'string' ? code : undefined;
  };
  return messageOf((err as { cause?: unknown } | null)?.cause) ?? messageOf(err) ?? String(err);
}

function usageOf(v: unknown): TokenCounts | undefined {
  if (!isObject(v)) return undefined;
  const n = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
  return { promptTokens: n(v['prompt_tokens']), completionTokens: n(v['completion_tokens']) };
}

/** The message an OpenAI-style error body carries (`{"error": {"message": …}}` and its variants). */
function errorMessageOf(body: string): string {
  let text = body;
  try {
    const parsed: unknown = JSON.parse(body);
    if (isObject(parsed)) {
      const e = parsed['error'];
      const m = isObject(e) ? e['message'] : (e ?? parsed['message'] ?? parsed['detail']);
      if (typeof m === 'string' && m) text = m;
    }
  } catch {
    // Not JSON: quote the text.
  }
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return '(empty body)';
  return flat.length > ERROR_EXCERPT_CHARS ? `${flat.slice(0, ERROR_EXCERPT_CHARS - 1)}…` : flat;
}

/**
 * A model served over the OpenAI-compatible HTTP protocol that llama.cpp's server, vLLM and Ollama speak:
 * `POST /chat/completions` or `/completions` with `stream: true` answered as server-sent events, and
 * `POST /embeddings`. Every failure is an EndpointError; the caller's signal aborts the HTTP request.
 */
export class OpenAiEndpoint {
  private readonly base: string;

  constructor(private readonly o: EndpointOptions) {
    this.base = o.baseUrl.replace(/\/+$/, '');
  }

  /**
   * Streams a completion: `onText` is awaited for every piece as it arrives (so a slow caller slows the
   * read, not memory), and the end says why it stopped. The timeout bounds the wait for the first byte
   * and for each next one, not the whole answer.
   */
  async generate(
    params: GenerateParams,
    signal: AbortSignal,
    onText: (text: string) => Promise<void>,
  ): Promise<GenerationEnd> {
    const chat = params.input.kind === 'chat';
    const body: Record<string, unknown> = {
      model: this.o.model,
      ...(params.input.kind === 'chat'
        ? { messages: params.input.messages }
        : { prompt: params.input.prompt }),
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: params.maxTokens,
      ...(params.temperature !== undefined ? { temperature: params.temperature } : {}),
      ...(params.topP !== undefined ? { top_p: params.topP } : {}),
      ...(params.stop.length > 0 ? { stop: params.stop } : {}),
      ...(params.seed !== undefined ? { seed: params.seed } : {}),
      ...(params.json ? { response_format: { type: 'json_object' } } : {}),
    };
    const req = new UpstreamRequest(
      this.url(chat ? '/chat/completions' : '/completions'),
      signal,
      this.o.timeoutMs,
    );
    try {
      const res = await this.post(req, body, 'answer');
      if ((res.headers.get('content-type') ?? '').includes('application/json')) {
        // A server that ignores `stream: true` answers with the whole completion at once.
        const whole = await this.json(req, res);
        const piece = this.choice(req, whole, chat, false);
        if (piece.text) await onText(piece.text);
        return { finishReason: piece.finish ?? 'stop', ...(piece.usage ? { usage: piece.usage } : {}) };
      }
      if (!res.body) throw req.fail('malformed', 'answered without a body');
      const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      const sse = new SseDecoder();
      let finish: FinishReason | undefined;
      let usage: TokenCounts | undefined;
      for (;;) {
        const { done, value } = await req.io('next token', () => reader.read());
        let events: string[];
        try {
          events = done ? sse.end() : sse.push(value);
        } catch (err) {
          throw req.fail('malformed', `sent a malformed event stream: ${(err as Error).message}`, err);
        }
        for (const data of events) {
          if (data.trim() === '[DONE]')
            return { finishReason: finish ?? 'stop', ...(usage ? { usage } : {}) };
          let chunk: unknown;
          try {
            chunk = JSON.parse(data);
          } catch (err) {
            throw req.fail('malformed', `sent an event that is not JSON: ${errorMessageOf(data)}`, err);
          }
          const piece = this.choice(req, chunk, chat, true);
          if (piece.usage) usage = piece.usage;
          if (piece.finish) finish = piece.finish;
          if (piece.text) await onText(piece.text);
        }
        if (done) {
          if (finish) return { finishReason: finish, ...(usage ? { usage } : {}) };
          throw req.fail('malformed', 'ended its event stream before the answer was finished (no [DONE])');
        }
      }
    } finally {
      req.close();
    }
  }

  /** One vector per text, in order, all of one dimension. */
  async embed(texts: string[], signal: AbortSignal): Promise<Embeddings> {
    const req = new UpstreamRequest(this.url('/embeddings'), signal, this.o.timeoutMs);
    try {
      // One timeout for the whole answer: embeddings are not streamed.
      return await req.io('answer', async () => {
        const res = await this.post(
          req,
          { model: this.o.model, input: texts, encoding_format: 'float' },
          'answer',
          false,
        );
        const body = await this.json(req, res, false);
        const data = isObject(body) ? body['data'] : undefined;
        if (!Array.isArray(data))
          throw req.fail(
            'malformed',
            `answered without a "data" list: ${errorMessageOf(JSON.stringify(body))}`,
          );
        if (data.length !== texts.length)
          throw req.fail('malformed', `answered ${data.length} embeddings for ${texts.length} texts`);
        const vectors: number[][] = new Array<number[]>(texts.length);
        data.forEach((item, i) => {
          const index = isObject(item) && typeof item['index'] === 'number' ? item['index'] : i;
          const values = isObject(item) ? item['embedding'] : undefined;
          if (
            !Array.isArray(values) ||
            values.length === 0 ||
            !values.every((x) => typeof x === 'number' && Number.isFinite(x))
          )
            throw req.fail('malformed', `answered embedding ${i} that is not a list of numbers`);
          if (!Number.isInteger(index) || index < 0 || index >= texts.length || vectors[index])
            throw req.fail('malformed', `answered embedding ${i} with a bad index ${index}`);
          vectors[index] = values as number[];
        });
        const dimensions = vectors[0]!.length;
        const odd = vectors.findIndex((v) => v.length !== dimensions);
        if (odd >= 0)
          throw req.fail(
            'malformed',
            `answered vectors of different dimensions (${dimensions} and ${vectors[odd]!.length})`,
          );
        const usage = isObject(body) ? usageOf(body['usage']) : undefined;
        return { vectors, ...(usage ? { usage } : {}) };
      });
    } finally {
      req.close();
    }
  }

  private url(path: string): string {
    return `${this.base}${path}`;
  }

  /** POSTs JSON; a non-2xx answer becomes an EndpointError quoting the body's message. */
  private async post(req: UpstreamRequest, body: unknown, what: string, timed = true): Promise<Response> {
    const send = (): Promise<Response> =>
      fetch(req.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream, application/json',
          ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}),
        },
        body: JSON.stringify(body),
        signal: req.controller.signal,
      });
    const res = timed ? await req.io(what, send) : await send();
    if (res.ok) return res;
    const text = await this.read(req, res, ERROR_BODY_BYTES, timed, true).catch(() => '');
    const kind = res.status >= 500 || res.status === 408 || res.status === 429 ? 'server-error' : 'rejected';
    throw new EndpointError(
      kind,
      req.url,
      `endpoint ${req.url} answered HTTP ${res.status}: ${errorMessageOf(text)}`,
      res.status,
    );
  }

  private async json(req: UpstreamRequest, res: Response, timed = true): Promise<unknown> {
    const text = await this.read(req, res, MAX_BODY_BYTES, timed);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw req.fail('malformed', `answered with a body that is not JSON: ${errorMessageOf(text)}`, err);
    }
  }

  /** Reads a body up to `limit` bytes: beyond it, an error (or, for an error body, the text so far). */
  private async read(
    req: UpstreamRequest,
    res: Response,
    limit: number,
    timed: boolean,
    truncate = false,
  ): Promise<string> {
    if (!res.body) return '';
    const reader = res.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const next = () => reader.read();
      const { done, value } = timed ? await req.io('answer', next) : await next();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => undefined);
        if (truncate) break;
        throw req.fail('malformed', `answered with a body larger than ${limit} bytes`);
      }
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The text, finish reason and usage of one (streamed or whole) completion. */
  private choice(
    req: UpstreamRequest,
    chunk: unknown,
    chat: boolean,
    streamed: boolean,
  ): { text: string; finish?: FinishReason; usage?: TokenCounts } {
    if (!isObject(chunk)) throw req.fail('malformed', 'sent a completion that is not a JSON object');
    if (chunk['error'] !== undefined)
      throw new EndpointError(
        'server-error',
        req.url,
        `endpoint ${req.url} reported an error: ${errorMessageOf(JSON.stringify(chunk))}`,
      );
    const usage = usageOf(chunk['usage']);
    const choices = chunk['choices'];
    if (!Array.isArray(choices))
      throw req.fail(
        'malformed',
        `sent a completion without "choices": ${errorMessageOf(JSON.stringify(chunk))}`,
      );
    // The usage-only chunk that ends a stream has no choices.
    const first: unknown = choices[0];
    if (first === undefined) return { text: '', ...(usage ? { usage } : {}) };
    if (!isObject(first)) throw req.fail('malformed', 'sent a choice that is not a JSON object');
    let text: unknown;
    if (!chat) text = first['text'];
    else {
      const holder = first[streamed ? 'delta' : 'message'];
      text = isObject(holder) ? holder['content'] : undefined;
    }
    if (text !== undefined && text !== null && typeof text !== 'string')
      throw req.fail('malformed', 'sent a choice whose content is not a string');
    const reason = first['finish_reason'];
    const finish = typeof reason === 'string' && reason ? (FINISH_REASONS[reason] ?? 'stop') : undefined;
    return { text: text ?? '', ...(finish ? { finish } : {}), ...(usage ? { usage } : {}) };
  }
}
