import type { ClientEndpointConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { healthV1 } from '@aether/proto';
import { createClient, unaryCall } from '@aether/rpc';

/**
 * Watches another daemon this one depends on (aurorad and cfcd depend on aetherd): logs when it becomes
 * reachable and when it is lost, so an operator sees the dependency's state in this daemon's log.
 */
export class UpstreamWatch {
  private readonly health: healthV1.HealthClient;
  private timer: NodeJS.Timeout | undefined;
  private lastState: string | undefined;

  constructor(
    readonly name: string,
    readonly endpoint: ClientEndpointConfig,
    private readonly log: Logger,
    private readonly intervalMs = 5_000,
  ) {
    this.health = createClient(healthV1.HealthClient, endpoint);
  }

  start(): void {
    const tick = (): void => {
      unaryCall(this.health.check.bind(this.health), { service: '' }, { timeoutMs: 2_000 })
        .then((r) => this.report(healthV1.healthCheckResponse_ServingStatusToJSON(r.status)))
        .catch((err: Error) => this.report(`unreachable: ${err.message}`))
        .finally(() => {
          this.timer = setTimeout(tick, this.intervalMs);
          this.timer.unref();
        });
    };
    tick();
  }

  private report(state: string): void {
    if (state === this.lastState) return;
    this.lastState = state;
    if (state === 'SERVING')
      this.log.info({ upstream: this.name, socket: this.endpoint.socket }, `${this.name} is serving`);
    else
      this.log.warn(
        { upstream: this.name, socket: this.endpoint.socket, state },
        `${this.name} is not serving`,
      );
  }

  close(): void {
    clearTimeout(this.timer);
    this.health.close();
  }
}
