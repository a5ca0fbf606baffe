import pino from 'pino';

export type Logger = pino.Logger;

/** Paths whose values never reach a log line, wherever they appear in a logged object. */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'privateKey',
  '*.privateKey',
  'keyPem',
  '*.keyPem',
  'metadata.authorization',
  'headers.authorization',
];

export interface LoggerOptions {
  /** The program name, e.g. `aetherd`; it becomes the `service` field of every line. */
  service: string;
  /** pino level: trace, debug, info, warn, error, fatal, silent. */
  level?: string;
  /** Where lines go; stdout by default, so journald collects them under systemd. */
  destination?: pino.DestinationStream;
}

/**
 * JSON lines on stdout, one object per event, with `service`, `pid`, an ISO time and redacted secrets.
 * Child loggers (`logger.child({ requestId })`) carry correlation ids.
 */
export function createLogger(options: LoggerOptions): Logger {
  const pinoOptions: pino.LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
}
