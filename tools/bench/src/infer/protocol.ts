/** A float32 tensor as it crosses to and from the benchmark's worker thread (as in cfcd's SessionWorker). */
export interface WorkerTensor {
  type: 'float32';
  data: Float32Array;
  dims: number[];
}

/** main → worker */
export type WorkerRequest =
  { kind: 'run'; id: number; feeds: Record<string, WorkerTensor> } | { kind: 'close' };

/** worker → main */
export interface WorkerReply {
  kind: 'ready' | 'result' | 'failed';
  id: number;
  outputs: Record<string, WorkerTensor>;
  computeMs: number;
  message?: string;
}
