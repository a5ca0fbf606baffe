import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What a checkpoint vouches for: the head of one daemon's log at a time. */
export interface CheckpointFields {
  daemon: string;
  /** seq of the head record; it and all before it were fdatasync'ed when the checkpoint was written. */
  seq: number;
  /** hash of that record. */
  hash: string;
  /** RFC 3339 wall time of the checkpoint. */
  ts: string;
}

/** A signed checkpoint, as stored (one JSON object, members in this order). */
export interface Checkpoint extends CheckpointFields {
  /** Base64 Ed25519 signature over {@link checkpointPayload}. */
  signature: string;
}

/** The signed bytes: `{"daemon":…,"seq":…,"hash":…,"ts":…}` (this order, no whitespace), UTF-8. */
export function checkpointPayload(c: CheckpointFields): string {
  return `{"daemon":${JSON.stringify(c.daemon)},"seq":${c.seq},"hash":${JSON.stringify(c.hash)},"ts":${JSON.stringify(c.ts)}}`;
}

/**
 * Creates an Ed25519 key for signing checkpoints and writes it as PKCS#8 PEM to `path` with mode 0600
 * (refusing to overwrite an existing file). Returns the public key (SPKI PEM) to give to verifiers.
 */
export async function generateCheckpointKey(path: string): Promise<{ publicKeyPem: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** Reads a PKCS#8 PEM Ed25519 private key. */
export async function loadCheckpointKey(path: string): Promise<KeyObject> {
  const key = createPrivateKey(await readFile(path));
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(
      `checkpoint key ${path}: expected an Ed25519 key, got ${key.asymmetricKeyType ?? 'unknown'}`,
    );
  return key;
}

/** A public key from a KeyObject (public or private) or PEM text of either. */
export function toPublicKey(key: KeyObject | string | Buffer): KeyObject {
  if (typeof key === 'string' || Buffer.isBuffer(key)) {
    const text = key.toString();
    return text.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(text)) : createPublicKey(text);
  }
  return key.type === 'private' ? createPublicKey(key) : key;
}

export function signCheckpoint(privateKey: KeyObject, fields: CheckpointFields): Checkpoint {
  const signature = sign(null, Buffer.from(checkpointPayload(fields)), privateKey).toString('base64');
  return { daemon: fields.daemon, seq: fields.seq, hash: fields.hash, ts: fields.ts, signature };
}

export function verifyCheckpointSignature(c: Checkpoint, publicKey: KeyObject | string | Buffer): boolean {
  try {
    return verify(
      null,
      Buffer.from(checkpointPayload(c)),
      toPublicKey(publicKey),
      Buffer.from(c.signature, 'base64'),
    );
  } catch {
    return false;
  }
}

/** Reads and shape-checks a checkpoint file (the signature is not checked here). */
export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const text = await readFile(path, 'utf8');
  let c: Partial<Record<keyof Checkpoint, unknown>>;
  try {
    c = JSON.parse(text) as typeof c;
  } catch (err) {
    throw new Error(`checkpoint ${path}: not JSON: ${(err as Error).message}`);
  }
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.daemon !== 'string' ||
    typeof c.seq !== 'number' ||
    !Number.isSafeInteger(c.seq) ||
    typeof c.hash !== 'string' ||
    typeof c.ts !== 'string' ||
    typeof c.signature !== 'string'
  )
    throw new Error(`checkpoint ${path}: expected {daemon, seq, hash, ts, signature}`);
  return { daemon: c.daemon, seq: c.seq, hash: c.hash, ts: c.ts, signature: c.signature };
}

/** fsync of a directory, so that a rename or a new entry in it survives a crash. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a checkpoint atomically: a temporary file beside it, fsync, rename over, fsync the directory. */
export async function writeCheckpoint(path: string, c: Checkpoint): Promise<void> {
  const tmp = `${path}.tmp`;
  const json = `{"daemon":${JSON.stringify(c.daemon)},"seq":${c.seq},"hash":${JSON.stringify(c.hash)},"ts":${JSON.stringify(c.ts)},"signature":${JSON.stringify(c.signature)}}\n`;
  const fh = await open(tmp, 'w', 0o640);
  try {
    await fh.writeFile(json);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  fsyncDir(dirname(path));
}
