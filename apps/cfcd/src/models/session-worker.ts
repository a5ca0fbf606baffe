import { Worker } from 'node:worker_threads';

/** A tensor as it crosses to and from the worker: onnxruntime's element type name, elements, shape. */
export interface WireTensor {
  type: string;
  data: ArrayBufferView | string[];
  dims: number[];
}

/** One input or output as onnxruntime describes it. */
export interface WireValueSpec {
  name: string;
  isTensor: boolean;
  type: string;
  /** A number per fixed dimension, a string (symbolic) or -1 per dynamic one. */
  shape: (number | string)[];
}

type FromWorker =
  | { kind: 'ready'; inputs: WireValueSpec[]; outputs: WireValueSpec[] }
  | { kind: 'load-failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, WireTensor>; computeMs: number }
  | { kind: 'run-failed'; id: number; message: string };

/**
 * The worker's program. It runs in its own thread (serialized with `toString`, so it must not use
 * anything from this module's scope): onnxruntime-node loads models and runs them synchronously on the
 * calling thread, so each loaded model gets a thread of its own and the daemon's event loop stays free.
 */
/* eslint-disable */
function workerProgram(): void {
  const { parentPort, workerData } = require('node:worker_threads');
  const ort = require(workerData.ortPath);
  const describe = (m: any) => ({
    name: m.name,
    isTensor: m.isTensor === true,
    type: m.isTensor ? String(m.type) : '',
    shape: m.isTensor ? Array.from(m.shape ?? []) : [],
  });
  ort.InferenceSession.create(workerData.modelPath).then(
    (session: any) => {
      parentPort.postMessage({
        kind: 'ready',
        inputs: session.inputMetadata.map(describe),
        outputs: session.outputMetadata.map(describe),
      });
      parentPort.on('message', (msg: any) => {
        if (msg.kind === 'close') {
          Promise.resolve(session.release()).finally(() => parentPort.close());
          return;
        }
        const feeds: Record<string, unknown> = {};
        try {
          for (const [name, t] of Object.entries<any>(msg.feeds))
            feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
        } catch (err: any) {
          parentPort.postMessage({ kind: 'run-failed', id: msg.id, message: String(err?.message ?? err) });
          return;
        }
        const start = performance.now();
        session.run(feeds, msg.fetches).then(
          (results: Record<string, any>) => {
            const computeMs = performance.now() - start;
            const outputs: Record<string, unknown> = {};
            const transfer: ArrayBuffer[] = [];
            for (const [name, t] of Object.entries(results)) {
              outputs[name] = { type: t.type, data: t.data, dims: Array.from(t.dims) };
              if (ArrayBuffer.isView(t.data))
                transfer.push((t.data as ArrayBufferView).buffer as ArrayBuffer);
            }
            parentPort.postMessage({ kind: 'result', id: msg.id, outputs, computeMs }, transfer);
          },
          (err: any) =>
            parentPort.postMessage({ kind: 'run-failed', id: msg.id, message: String(err?.message ?? err) }),
        );
      });
    },
    (err: any) => {
      parentPort.postMessage({ kind: 'load-failed', message: String(err?.message ?? err) });
      parentPort.close();
    },
  );
}
/* eslint-enable */

/** Loading the model failed (it is not a model onnxruntime can load); the message is onnxruntime's. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

/** onnxruntime refused to run the inputs (e.g. a shape the graph cannot take); the message is its own. */
export class InferenceRunError extends Error {
  override readonly name = 'InferenceRunError';
}

interface Pending {
  resolve: (r: { outputs: Record<string, WireTensor>; computeMs: number }) => void;
  reject: (err: Error) => void;
}

/**
 * One ONNX model loaded in its own worker thread. Requests are handed to the worker in order; the
 * caller's thread never waits on onnxruntime.
 */
export class SessionWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited?: Error;

  private constructor(
    private readonly worker: Worker,
    readonly inputs: WireValueSpec[],
    readonly outputs: WireValueSpec[],
  ) {
    worker.on('message', (msg: FromWorker) => {
      if (msg.kind !== 'result' && msg.kind !== 'run-failed') return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.kind === 'result') p?.resolve(msg);
      else p?.reject(new InferenceRunError(msg.message));
    });
    const fail = (err: Error): void => {
      this.exited = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the model's worker thread exited (code ${code})`)));
  }

  /** Loads `modelPath` in a new worker; rejects with ModelLoadError when onnxruntime cannot load it. */
  static start(modelPath: string): Promise<SessionWorker> {
    const worker = new Worker(`(${workerProgram.toString()})()`, {
      eval: true,
      workerData: { ortPath: require.resolve('onnxruntime-node'), modelPath },
    });
    return new Promise((resolve, reject) => {
      const onExit = (code: number): void =>
        reject(new ModelLoadError(`worker exited (code ${code}) while loading`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (msg: FromWorker) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (msg.kind === 'ready') resolve(new SessionWorker(worker, msg.inputs, msg.outputs));
        else {
          reject(
            new ModelLoadError(msg.kind === 'load-failed' ? msg.message : 'unexpected message from worker'),
          );
          void worker.terminate();
        }
      });
    });
  }

  run(
    feeds: Record<string, WireTensor>,
    fetches: string[],
  ): Promise<{ outputs: Record<string, WireTensor>; computeMs: number }> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    const transfer = Object.values(feeds).flatMap((t) =>
      ArrayBuffer.isView(t.data) ? [t.data.buffer as ArrayBuffer] : [],
    );
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'run', id, feeds, fetches }, transfer);
    });
  }

  /** Releases the session and ends the thread (after the requests already handed to it). */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ kind: 'close' });
    const timer = setTimeout(() => void this.worker.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
