import { z } from 'zod';

const absolutePath = z.string().min(1).startsWith('/', 'must be an absolute path');
const bytes = z.number().int().min(0);

/** The artifact store (ARCHITECTURE §6). */
export const artifactsConfigSchema = z.strictObject({
  /** Blobs (`blobs/sha256/…`), temporary uploads (`tmp/`) and the metadata database. Empty: `<stateDir>/artifacts`. */
  dir: z.union([z.literal(''), absolutePath]),
  /** Host directories CreateArtifact may import from by absolute path (a job's `/work` is always allowed for its own files). */
  importRoots: z.array(absolutePath),
  /** Largest single artifact in bytes; 0: no limit besides the quota. */
  maxArtifactBytes: bytes,
  /** Total bytes of distinct blobs the store may hold; 0: no quota (the disk is the limit). */
  quotaBytes: bytes,
  /** Free space to keep on the store's filesystem; an artifact that would leave less is refused (DISK_FULL). */
  reserveFreeBytes: bytes,
});
export type ArtifactsConfig = z.infer<typeof artifactsConfigSchema>;

export function defaultArtifactsConfig(): ArtifactsConfig {
  return {
    dir: '',
    importRoots: [],
    maxArtifactBytes: 64 * 1024 * 1024 * 1024,
    quotaBytes: 0,
    reserveFreeBytes: 256 * 1024 * 1024,
  };
}

/** The memory store (ARCHITECTURE §6). */
export const memoryConfigSchema = z.strictObject({
  /** The memory database. Empty: `<stateDir>/memory`. */
  dir: z.union([z.literal(''), absolutePath]),
  /** Largest entry text in UTF-8 bytes (ENTRY_TOO_LARGE above). */
  maxEntryBytes: z
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024),
  /** Total UTF-8 bytes of stored text, all versions; 0: no quota. */
  quotaBytes: bytes,
  /** Search considers at most this many matching passages for ranking (very common terms). */
  candidateCap: z.number().int().min(100).max(10_000_000),
  /** Target passage length in code points when a document is split. */
  passageLength: z.number().int().min(100).max(100_000),
  /** Semantic ranking through cfcd embeddings: the model to embed with; empty: FTS5 only. */
  embeddingModel: z.string(),
});
export type MemoryConfig = z.infer<typeof memoryConfigSchema>;

export function defaultMemoryConfig(): MemoryConfig {
  return {
    dir: '',
    maxEntryBytes: 8 * 1024 * 1024,
    quotaBytes: 0,
    candidateCap: 10_000,
    passageLength: 1000,
    embeddingModel: '',
  };
}

/** The event stream (ARCHITECTURE §8): persisted in SQLite, kept by age and by count. */
export const eventsConfigSchema = z.strictObject({
  /** The events database. Empty: `<stateDir>/events`. */
  dir: z.union([z.literal(''), absolutePath]),
  /** Events older than this many seconds are removed; 0: no age limit. */
  maxAgeSeconds: z.number().int().min(0),
  /** At most this many events are kept (the oldest go first); 0: no count limit. */
  maxEvents: z.number().int().min(0),
  /** Largest `data` of one event, serialized, in bytes (EVENT_TOO_LARGE above). */
  maxDataBytes: z
    .number()
    .int()
    .min(1024)
    .max(4 * 1024 * 1024),
  /** Undelivered events held per subscriber before it is handled as too slow (gap or disconnect). */
  subscriberBuffer: z.number().int().min(16).max(1_000_000),
  /** Concurrent subscribers allowed (RESOURCE_EXHAUSTED / TOO_MANY_SUBSCRIBERS above). */
  maxSubscribers: z.number().int().min(1).max(100_000),
});
export type EventsConfig = z.infer<typeof eventsConfigSchema>;

export function defaultEventsConfig(): EventsConfig {
  return {
    dir: '',
    maxAgeSeconds: 7 * 24 * 3600,
    maxEvents: 1_000_000,
    maxDataBytes: 64 * 1024,
    subscriberBuffer: 10_000,
    maxSubscribers: 1024,
  };
}
