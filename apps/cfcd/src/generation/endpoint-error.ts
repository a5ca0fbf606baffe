/**
 * What went wrong talking to an OpenAI-compatible endpoint, in the terms a caller can act on:
 * - `unreachable`: no connection, or it broke (retry later);
 * - `server-error`: a 5xx answer, or 408/429 (the endpoint is busy or failing; retry later);
 * - `rejected`: a 4xx answer (the request, the model name or the key is wrong; retrying will not help);
 * - `malformed`: a 2xx answer that is not the protocol (not JSON, no choices, a truncated stream);
 * - `timeout`: no answer, or no next token, within the model's timeout;
 * - `cancelled`: the caller went away, and the upstream request was aborted with it.
 */
export type EndpointErrorKind =
  'unreachable' | 'server-error' | 'rejected' | 'malformed' | 'timeout' | 'cancelled';

export class EndpointError extends Error {
  override readonly name = 'EndpointError';
  constructor(
    readonly kind: EndpointErrorKind,
    /** The URL that was asked, e.g. `http://127.0.0.1:8080/v1/chat/completions`. */
    readonly url: string,
    message: string,
    /** The HTTP status, when the endpoint answered with one. */
    readonly httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
