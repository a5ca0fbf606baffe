/**
 * The benchmark's `worker` path: one onnxruntime-node session in a worker thread of the benchmark's own
 * process, spoken to the way cfcd's SessionWorker (apps/cfcd/src/models/session-worker.ts) speaks to its
 * worker: the input's buffer transferred in a `postMessage`, an `ort.Tensor` made in the worker, `run`,
 * the outputs' buffers transferred back. Its latency minus the direct path's is the cost of the thread hop
 * alone, without gRPC.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import type { WorkerReply, WorkerRequest } from './protocol';

const { modelPath } = workerData as { modelPath: string };

async function serve(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('worker.js runs as a worker thread');
  const session = await InferenceSession.create(modelPath);
  port.on('message', (msg: WorkerRequest) => {
    if (msg.kind === 'close') {
      void session.release().finally(() => port.close());
      return;
    }
    const feeds: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new Tensor(t.type, t.data, t.dims);
    const start = performance.now();
    session.run(feeds).then(
      (results) => {
        const computeMs = performance.now() - start;
        const outputs: WorkerReply['outputs'] = {};
        const transfer: ArrayBuffer[] = [];
        for (const [name, t] of Object.entries(results)) {
          const data = t.data as Float32Array;
          outputs[name] = { type: 'float32', data, dims: Array.from(t.dims) };
          transfer.push(data.buffer as ArrayBuffer);
        }
        const reply: WorkerReply = { kind: 'result', id: msg.id, outputs, computeMs };
        port.postMessage(reply, transfer);
      },
      (err: unknown) => {
        const reply: WorkerReply = {
          kind: 'failed',
          id: msg.id,
          message: String(err),
          outputs: {},
          computeMs: 0,
        };
        port.postMessage(reply);
      },
    );
  });
  port.postMessage({ kind: 'ready', id: 0, outputs: {}, computeMs: 0 } satisfies WorkerReply);
}

serve().catch((err: unknown) => {
  process.stderr.write(
    `bench infer worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
