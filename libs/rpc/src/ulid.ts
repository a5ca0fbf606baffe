import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** Random bytes drawn 4 KiB at a time: one call into OpenSSL per 256 ids instead of one per id. */
let pool = Buffer.alloc(0);
let poolOffset = 0;

/** A lowercase ULID: sortable by creation time, unique, and a valid container id. */
export function newId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  if (poolOffset + 16 > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  let r = '';
  for (let i = 0; i < 16; i++) r += CROCKFORD[pool[poolOffset + i]! % 32]!;
  poolOffset += 16;
  return time + r;
}
