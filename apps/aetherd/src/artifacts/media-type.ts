import { extname } from 'node:path';

/** Media types guessed from a file name's extension when a client names none. */
const BY_EXTENSION: Readonly<Record<string, string>> = {
  '.onnx': 'application/onnx',
  '.json': 'application/json',
  '.jsonl': 'application/jsonl',
  '.ndjson': 'application/x-ndjson',
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.txt': 'text/plain',
  '.log': 'text/plain',
  '.md': 'text/markdown',
  '.html': 'text/html',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.xml': 'application/xml',
  '.parquet': 'application/vnd.apache.parquet',
  '.arrow': 'application/vnd.apache.arrow.file',
  '.safetensors': 'application/vnd.safetensors',
  '.pt': 'application/x-pytorch',
  '.pth': 'application/x-pytorch',
  '.npy': 'application/x-npy',
  '.npz': 'application/zip',
  '.gz': 'application/gzip',
  '.tgz': 'application/gzip',
  '.zst': 'application/zstd',
  '.tar': 'application/x-tar',
  '.zip': 'application/zip',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.pdf': 'application/pdf',
};

export const DEFAULT_MEDIA_TYPE = 'application/octet-stream';

/** The media type of a file named `filename`, by its extension (case-insensitive); octet-stream otherwise. */
export function guessMediaType(filename: string): string {
  return BY_EXTENSION[extname(filename).toLowerCase()] ?? DEFAULT_MEDIA_TYPE;
}
