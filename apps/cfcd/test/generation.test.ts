import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import {
  defaultServerConfig,
  generationEndpointSchema,
  type ClientEndpointConfig,
  type GenerationEndpointConfig,
} from '@aether/config';
import { createLogger } from '@aether/log';
import { modelsV1 } from '@aether/proto';
import { AetherServer, createClient, RpcError, serverStreamCall, unaryCall } from '@aether/rpc';
import { generationServiceHandlers } from '../src/generation/generation-service';
import { ModelEndpoints } from '../src/generation/model-endpoints';
import { chatDelta, closedPort, eventStream, json, OpenAiTestServer, usageChunk } from './openai-test-server';

const { ChatRole, FinishReason } = modelsV1;

const endpoint = (e: Partial<GenerationEndpointConfig> & { baseUrl: string }): GenerationEndpointConfig =>
  generationEndpointSchema.parse({ model: 'test-model', ...e });

const chat = (
  name: string,
  extra: Partial<modelsV1.GenerateRequest> = {},
  text = 'plan this',
): modelsV1.GenerateRequest =>
  modelsV1.GenerateRequest.fromPartial({
    name,
    input: {
      $case: 'chat',
      value: {
        messages: [
          { role: ChatRole.CHAT_ROLE_SYSTEM, content: 'answer in JSON' },
          { role: ChatRole.CHAT_ROLE_USER, content: text },
        ],
      },
    },
    ...extra,
  });

const failure = async (p: Promise<unknown>): Promise<RpcError> => {
  try {
    await p;
  } catch (err) {
    return RpcError.from(err);
  }
  throw new Error('expected the call to fail');
};

/**
 * cfcd's Generate and Embed behind the real request pipeline on a real Unix socket, talking over real
 * HTTP to a local OpenAI-compatible server scripted by each test.
 */
describe('cfcd generation through an OpenAI-compatible endpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aether-cfcd-'));
  let fake: OpenAiTestServer;
  let server: AetherServer;
  let client: modelsV1.ModelRuntimeServiceClient;

  const generate = async (
    req: modelsV1.GenerateRequest,
    onMessage?: (m: modelsV1.GenerateResponse) => void,
  ): Promise<modelsV1.GenerateResponse[]> => {
    const out: modelsV1.GenerateResponse[] = [];
    for await (const m of serverStreamCall(client.generate.bind(client), req, { timeoutMs: 10_000 })) {
      out.push(m);
      onMessage?.(m);
    }
    return out;
  };
  const embed = (name: string, texts: string[]): Promise<modelsV1.EmbedResponse> =>
    unaryCall(client.embed.bind(client), modelsV1.EmbedRequest.fromPartial({ name, texts }), {
      timeoutMs: 10_000,
    });

  beforeAll(async () => {
    fake = await OpenAiTestServer.start();
    const keyFile = join(dir, 'api-key');
    writeFileSync(keyFile, 'sk-test-key\n', { mode: 0o600 });
    const models = ModelEndpoints.load({
      planner: endpoint({ baseUrl: fake.baseUrl, kind: 'chat', maxTokens: 300 }),
      embedder: endpoint({ baseUrl: fake.baseUrl, kind: 'embedding', model: 'test-embedder' }),
      keyed: endpoint({ baseUrl: `${fake.baseUrl}/`, apiKeyFile: keyFile }),
      impatient: endpoint({ baseUrl: fake.baseUrl, timeoutMs: 300 }),
      down: endpoint({ baseUrl: `http://127.0.0.1:${await closedPort()}/v1` }),
    });
    const config = defaultServerConfig('cfcd', dir);
    config.socket = { path: join(dir, 'cfcd.sock'), mode: '0600', group: '' };
    config.tls.mode = 'insecure-plaintext';
    server = new AetherServer({
      name: 'cfcd',
      config,
      log: createLogger({ service: 'cfcd', level: 'silent' }),
      policy: { decide: () => ({ effect: 'allow', policyIds: ['test-allow'], reason: 'test' }) },
      audit: { record: () => Promise.resolve() },
    });
    server.addService(modelsV1.ModelRuntimeServiceService, generationServiceHandlers(models));
    await server.start();
    const to: ClientEndpointConfig = {
      socket: config.socket.path,
      serverId: 'spiffe://aether.local/cfcd',
      mode: 'insecure-plaintext',
      caFile: '-',
      certFile: '-',
      keyFile: '-',
    };
    client = createClient(modelsV1.ModelRuntimeServiceClient, to);
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    fake.received.length = 0;
  });

  it('streams each delta to the client as it arrives, in order, then the finish reason and usage', async () => {
    let firstSeen!: () => void;
    const clientHasFirst = new Promise<void>((r) => (firstSeen = r));
    fake.handler = async (_req, res) => {
      const s = eventStream(res);
      s.send(chatDelta(''));
      s.send(chatDelta('{"steps"'));
      // The rest is held back until the client has the first piece: nothing is buffered to the end.
      await clientHasFirst;
      s.send(chatDelta(': ['));
      s.send(chatDelta(']}'));
      s.send(chatDelta(null, 'stop'));
      s.send(usageChunk(21, 4));
      s.done();
    };
    const messages = await generate(chat('models/planner'), (m) => {
      if (m.text) firstSeen();
    });
    expect(messages.map((m) => m.text)).toEqual(['{"steps"', ': [', ']}', '']);
    expect(
      messages.slice(0, -1).every((m) => m.finishReason === FinishReason.FINISH_REASON_UNSPECIFIED),
    ).toBe(true);
    expect(messages.at(-1)).toMatchObject({
      finishReason: FinishReason.FINISH_REASON_STOP,
      usage: { promptTokens: 21n, completionTokens: 4n },
    });
  });

  it('posts the chat with json_output as response_format, the sampling settings and the configured default max_tokens', async () => {
    fake.handler = (_req, res) => {
      const s = eventStream(res);
      s.send(chatDelta('{}', 'stop'));
      s.done();
    };
    await generate(
      chat('models/planner', {
        jsonOutput: true,
        temperature: 0,
        topP: 0.5,
        stop: ['\n\n', 'END'],
        seed: 7n,
      }),
    );
    expect(fake.received).toHaveLength(1);
    const [req] = fake.received;
    expect(req!.method).toBe('POST');
    expect(req!.path).toBe('/v1/chat/completions');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['authorization']).toBeUndefined();
    expect(req!.body).toEqual({
      model: 'test-model',
      messages: [
        { role: 'system', content: 'answer in JSON' },
        { role: 'user', content: 'plan this' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 300,
      temperature: 0,
      top_p: 0.5,
      stop: ['\n\n', 'END'],
      seed: 7,
      response_format: { type: 'json_object' },
    });
  });

  it('sends a plain prompt to /completions, without response_format unless asked, with the API key', async () => {
    fake.handler = (_req, res) => {
      const s = eventStream(res);
      s.send({ object: 'text_completion', choices: [{ index: 0, text: 'Hello', finish_reason: null }] });
      s.send({
        object: 'text_completion',
        choices: [{ index: 0, text: ', world', finish_reason: 'length' }],
      });
      s.done();
    };
    const messages = await generate(
      modelsV1.GenerateRequest.fromPartial({
        name: 'models/keyed',
        input: { $case: 'prompt', value: 'Say hello' },
        maxTokens: 2,
      }),
    );
    expect(messages.map((m) => m.text).join('')).toBe('Hello, world');
    expect(messages.at(-1)!.finishReason).toBe(FinishReason.FINISH_REASON_LENGTH);
    expect(messages.at(-1)!.usage).toBeUndefined();
    const [req] = fake.received;
    expect(req!.path).toBe('/v1/completions');
    expect(req!.headers['authorization']).toBe('Bearer sk-test-key');
    expect(req!.body).toEqual({
      model: 'test-model',
      prompt: 'Say hello',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 2,
    });
  });

  it('takes a whole JSON answer from a server that does not stream', async () => {
    fake.handler = (_req, res) =>
      json(res, 200, {
        choices: [
          { index: 0, message: { role: 'assistant', content: 'all at once' }, finish_reason: 'stop' },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 3 },
      });
    const messages = await generate(chat('models/planner'));
    expect(messages.map((m) => m.text)).toEqual(['all at once', '']);
    expect(messages.at(-1)!.usage).toEqual({ promptTokens: 3n, completionTokens: 3n });
  });

  it('aborts the upstream request when the client cancels mid-stream', async () => {
    fake.handler = (_req, res) => {
      const s = eventStream(res);
      s.send(chatDelta('first'));
      // …and never more: only the client going away ends this request.
    };
    const stream = client.generate(chat('models/planner'));
    await new Promise<void>((resolve, reject) => {
      stream.once('data', () => resolve());
      stream.once('error', reject);
    });
    stream.on('error', () => undefined);
    stream.cancel();
    expect(await fake.received[0]!.closed).toBe('aborted');
  });

  it('answers UNAVAILABLE / ENDPOINT_UNAVAILABLE naming the endpoint when nothing listens there', async () => {
    const err = await failure(generate(chat('models/down')));
    expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(err.message).toMatch(
      /^models\/down: endpoint http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions cannot be reached: .*ECONNREFUSED/,
    );
    expect(err.metadata['model']).toBe('models/down');
    expect(err.metadata['endpoint']).toMatch(/\/v1\/chat\/completions$/);
  });

  it('answers UNAVAILABLE with the HTTP status and the body’s message when the endpoint answers 5xx', async () => {
    fake.handler = (_req, res) =>
      json(res, 503, { error: { message: 'model is loading', type: 'unavailable' } });
    const err = await failure(generate(chat('models/planner')));
    expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(err.message).toBe(
      `models/planner: endpoint ${fake.baseUrl}/chat/completions answered HTTP 503: model is loading`,
    );
    expect(err.metadata['http_status']).toBe('503');
  });

  it('passes a 4xx answer on as INVALID_ARGUMENT / ENDPOINT_REJECTED with its message', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('response_format json_object is not supported by this model\n');
    };
    const err = await failure(generate(chat('models/planner', { jsonOutput: true })));
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'ENDPOINT_REJECTED' });
    expect(err.message).toContain('answered HTTP 400: response_format json_object is not supported');
  });

  it('answers UNAVAILABLE for a malformed stream, after the pieces that were good', async () => {
    fake.handler = (_req, res) => {
      const s = eventStream(res);
      s.send(chatDelta('ok so far'));
      s.send('{"choices": [ not json');
      s.done();
    };
    const received: string[] = [];
    const err = await failure(generate(chat('models/planner'), (m) => received.push(m.text)));
    expect(received).toEqual(['ok so far']);
    expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(err.message).toContain('sent an event that is not JSON');
  });

  it('answers UNAVAILABLE when the stream ends before the answer is finished', async () => {
    fake.handler = (_req, res) => {
      const s = eventStream(res);
      s.send(chatDelta('half an ans'));
      res.end();
    };
    const err = await failure(generate(chat('models/planner')));
    expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(err.message).toContain('before the answer was finished');
  });

  it('answers DEADLINE_EXCEEDED / ENDPOINT_TIMEOUT when the next token takes longer than the timeout, and aborts upstream', async () => {
    fake.handler = async (_req, res) => {
      const s = eventStream(res);
      for (const piece of ['a', 'b', 'c']) {
        // Each gap is under the 300 ms timeout: a slow but steady answer is fine.
        await new Promise((r) => setTimeout(r, 150));
        s.send(chatDelta(piece));
      }
      // Then it stalls.
    };
    const received: string[] = [];
    const err = await failure(generate(chat('models/impatient'), (m) => received.push(m.text)));
    expect(received).toEqual(['a', 'b', 'c']);
    expect(err).toMatchObject({ code: status.DEADLINE_EXCEEDED, reason: 'ENDPOINT_TIMEOUT' });
    expect(err.message).toContain('gave no next token within 300 ms');
    expect(await fake.received[0]!.closed).toBe('aborted');
  });

  it('refuses unknown models, the wrong kind of model and invalid requests before calling the endpoint', async () => {
    expect(await failure(generate(chat('models/nope')))).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'MODEL_NOT_FOUND',
      message: 'models/nope not found',
    });
    expect(await failure(generate(chat('models/embedder')))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'CAPABILITY_UNSUPPORTED',
    });
    expect(await failure(embed('models/planner', ['x']))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'CAPABILITY_UNSUPPORTED',
    });
    expect(await failure(generate(chat('planner')))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_NAME',
    });
    const invalid = await failure(
      generate(
        modelsV1.GenerateRequest.fromPartial({
          name: 'models/planner',
          input: { $case: 'prompt', value: '  ' },
          maxTokens: -1,
          temperature: 2.5,
          topP: 0,
          stop: ['a', 'b', 'c', 'd', 'e'],
        }),
      ),
    );
    expect(invalid).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'INVALID_FIELD' });
    expect(invalid.fieldViolations.map((v) => v.field)).toEqual([
      'prompt',
      'max_tokens',
      'temperature',
      'top_p',
      'stop',
    ]);
    expect(invalid.message).toContain('stop: must have at most 4 stop sequences, not 5');
    expect(
      (await failure(generate(modelsV1.GenerateRequest.fromPartial({ name: 'models/planner' }))))
        .fieldViolations,
    ).toEqual([{ field: 'prompt', description: 'set prompt or chat' }]);
    expect(
      (
        await failure(
          generate(
            modelsV1.GenerateRequest.fromPartial({
              name: 'models/planner',
              input: {
                $case: 'chat',
                value: { messages: [{ role: ChatRole.CHAT_ROLE_UNSPECIFIED, content: 'x' }] },
              },
            }),
          ),
        )
      ).fieldViolations.map((v) => v.field),
    ).toEqual(['chat.messages[0].role']);
    expect((await failure(embed('models/embedder', []))).fieldViolations.map((v) => v.field)).toEqual([
      'texts',
    ]);
    expect(fake.received).toEqual([]);
  });

  it('embeds texts: one vector per text in the order asked, with the dimension and usage', async () => {
    fake.handler = (req, res) => {
      const input = req.body['input'] as string[];
      // Out of order on purpose: `index` says which text each vector belongs to.
      const data = input
        .map((t, index) => ({ object: 'embedding', index, embedding: [t.length, index, 0.5] }))
        .reverse();
      json(res, 200, { object: 'list', data, usage: { prompt_tokens: 5, total_tokens: 5 } });
    };
    const res = await embed('models/embedder', ['a', 'bb', 'ccc']);
    expect(res.dimensions).toBe(3);
    expect(res.embeddings.map((e) => e.values)).toEqual([
      [1, 0, 0.5],
      [2, 1, 0.5],
      [3, 2, 0.5],
    ]);
    expect(res.usage).toEqual({ promptTokens: 5n, completionTokens: 0n });
    const [req] = fake.received;
    expect(req!.path).toBe('/v1/embeddings');
    expect(req!.body).toEqual({
      model: 'test-embedder',
      input: ['a', 'bb', 'ccc'],
      encoding_format: 'float',
    });
  });

  it('answers UNAVAILABLE when embeddings come back inconsistent, and when the endpoint is down', async () => {
    fake.handler = (_req, res) =>
      json(res, 200, {
        data: [
          { index: 0, embedding: [1, 2, 3] },
          { index: 1, embedding: [1, 2] },
        ],
      });
    const odd = await failure(embed('models/embedder', ['a', 'b']));
    expect(odd).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(odd.message).toContain('vectors of different dimensions (3 and 2)');

    fake.handler = (_req, res) => json(res, 200, { data: [{ index: 0, embedding: [1, 2, 3] }] });
    expect((await failure(embed('models/embedder', ['a', 'b']))).message).toContain(
      'answered 1 embeddings for 2 texts',
    );

    const down = await failure(embed('models/down', ['a']));
    expect(down).toMatchObject({ code: status.UNAVAILABLE, reason: 'ENDPOINT_UNAVAILABLE' });
    expect(down.message).toMatch(/\/v1\/embeddings cannot be reached/);
  });
});

describe('loading the configured endpoints', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aether-cfcd-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses an API key file that others can read, and one that is missing', () => {
    const keyFile = join(dir, 'open-key');
    writeFileSync(keyFile, 'sk-secret\n');
    chmodSync(keyFile, 0o644);
    const load = (apiKeyFile: string): ModelEndpoints =>
      ModelEndpoints.load({ planner: endpoint({ baseUrl: 'http://127.0.0.1:1/v1', apiKeyFile }) });
    expect(() => load(keyFile)).toThrow(
      `cfcd.generation.endpoints.planner.apiKeyFile: ${keyFile} is accessible by others (mode 0644); an API key file must be mode 0600 or 0640`,
    );
    chmodSync(keyFile, 0o640);
    expect(load(keyFile).get('planner')).toBeDefined();
    expect(() => load(join(dir, 'missing'))).toThrow(/apiKeyFile: cannot read .*missing: ENOENT/);
  });
});
