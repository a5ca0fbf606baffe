/** One problem with one configuration value, named by its path and where the value came from. */
export interface ConfigIssue {
  /** Dotted path, e.g. `socket.mode`. */
  path: string;
  message: string;
  /** e.g. `file /etc/aether/aetherd.yaml`, `env AETHERD_SOCKET_MODE`, `flag --socket-mode`, `default`. */
  source: string;
}

/** Thrown when configuration cannot be read or does not validate; `message` lists every issue. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: readonly ConfigIssue[],
    options?: { cause?: unknown },
  ) {
    super(
      `invalid configuration:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message} (from ${i.source})`).join('\n')}`,
      options,
    );
  }
}
