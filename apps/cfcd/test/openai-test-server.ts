import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local OpenAI-compatible HTTP server written for the tests. It stands in for llama.cpp's server,
 * vLLM or Ollama, which cannot run here: it speaks the same wire protocol (`POST /v1/chat/completions`,
 * `/v1/completions`, `/v1/embeddings`; `stream: true` answered as server-sent events ending in
 * `data: [DONE]`), and each test scripts its answers and inspects the requests it received.
 */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** Resolves when the response ends or the client drops the connection; says which. */
  closed: Promise<'finished' | 'aborted'>;
}

export type Handler = (req: ReceivedRequest, res: ServerResponse) => void | Promise<void>;

export class OpenAiTestServer {
  readonly received: ReceivedRequest[] = [];
  handler: Handler = (_req, res) => json(res, 404, { error: { message: 'no handler scripted' } });

  private constructor(private readonly server: Server) {}

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  static async start(): Promise<OpenAiTestServer> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const closed = new Promise<'finished' | 'aborted'>((resolve) =>
          res.once('close', () => resolve(res.writableFinished ? 'finished' : 'aborted')),
        );
        const received: ReceivedRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
          closed,
        };
        self.received.push(received);
        Promise.resolve(self.handler(received, res)).catch((err: unknown) => {
          if (!res.headersSent) json(res, 500, { error: { message: String(err) } });
          else res.destroy();
        });
      });
    });
    const self = new OpenAiTestServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  /** The base URL as cfcd's configuration takes it, version path included. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Starts an event stream; `send` writes one `data:` event, `done` writes `[DONE]` and ends. */
export function eventStream(res: ServerResponse): { send: (data: unknown) => void; done: () => void } {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  return {
    send: (data) => void res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`),
    done: () => {
      res.write('data: [DONE]\n\n');
      res.end();
    },
  };
}

/** One streamed chat chunk, as OpenAI-compatible servers send it. */
export const chatDelta = (content: string | null, finishReason: string | null = null): unknown => ({
  id: 'chatcmpl-test',
  object: 'chat.completion.chunk',
  model: 'test-model',
  choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finishReason }],
});

/** The usage-only chunk that `stream_options: {include_usage: true}` adds before `[DONE]`. */
export const usageChunk = (prompt: number, completion: number): unknown => ({
  id: 'chatcmpl-test',
  object: 'chat.completion.chunk',
  choices: [],
  usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
});

/** A closed port: nothing listens there. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
