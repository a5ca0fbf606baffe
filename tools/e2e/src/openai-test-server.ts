import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the scripted model received: its path and JSON body. */
export interface ModelRequest {
  path: string;
  body: Record<string, unknown>;
}

/** What the model answers to the n-th request (0-based), given the request. */
export type Script = (request: ModelRequest, n: number) => string;

/**
 * A local OpenAI-compatible HTTP server whose answers a test scripts per request. It stands in for
 * llama.cpp's server, vLLM or Ollama, which cannot run here, speaking the same wire protocol cfcd uses:
 * `POST /v1/chat/completions` with `stream: true`, answered as server-sent events (`data: {chunk}` with
 * `choices[0].delta.content`, a usage chunk, `data: [DONE]`). Each answer is streamed in a few pieces.
 * `POST /v1/embeddings` answers with the vectors of {@link ScriptedModelServer.embed}.
 */
export class ScriptedModelServer {
  readonly received: ModelRequest[] = [];
  /** Set per test. */
  script: Script = () => '{}';
  /** The vector `POST /v1/embeddings` answers for one text; set per test. */
  embed: (text: string) => number[] = (text) => [text.length, 1];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<ScriptedModelServer> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request: ModelRequest = {
          path: req.url ?? '',
          body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
        };
        const n = self.received.push(request) - 1;
        if (req.method === 'POST' && request.path === '/v1/embeddings') {
          const input = request.body['input'];
          const texts = Array.isArray(input) ? (input as string[]) : [String(input)];
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              object: 'list',
              data: texts.map((t, index) => ({ object: 'embedding', index, embedding: self.embed(t) })),
              usage: { prompt_tokens: texts.join(' ').length, total_tokens: texts.join(' ').length },
            }),
          );
          return;
        }
        if (req.method !== 'POST' || request.path !== '/v1/chat/completions') {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: `no route ${req.method} ${request.path}` } }));
          return;
        }
        let answer: string;
        try {
          answer = self.script(request, n);
        } catch (err) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: (err as Error).message } }));
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const send = (data: unknown): boolean => res.write(`data: ${JSON.stringify(data)}\n\n`);
        const third = Math.ceil(answer.length / 3) || 1;
        for (let at = 0; at < answer.length; at += third)
          send({
            choices: [{ index: 0, delta: { content: answer.slice(at, at + third) }, finish_reason: null }],
          });
        send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
        send({ choices: [], usage: { prompt_tokens: 100, completion_tokens: answer.length } });
        res.end('data: [DONE]\n\n');
      });
    });
    const self = new ScriptedModelServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  /** The base URL for cfcd's `cfcd.generation.endpoints.<model>.baseUrl`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  /** Stops listening: from now on the endpoint is down (connection refused). */
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
