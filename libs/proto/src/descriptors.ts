import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The `buf build` FileDescriptorSet of every proto file and its imports (same path from src/ and dist/). */
export const DESCRIPTOR_SET_PATH = join(__dirname, '..', 'descriptors', 'aether.binpb');

let cached: Uint8Array | undefined;

/** The complete descriptor set, read once. */
export function descriptorSet(): Uint8Array {
  cached ??= readFileSync(DESCRIPTOR_SET_PATH);
  return cached;
}
