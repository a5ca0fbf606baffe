import { status as Status } from '@grpc/grpc-js';
import { isMetricsPath, metricsPaths, PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from '@aether/metrics';
import type { metricsV1 } from '@aether/proto';
import { RpcError, unary, type ServiceHandlers } from '@aether/rpc';

/** MetricsService of every daemon: the typed snapshot and the same numbers as Prometheus text. */
export function metricsServiceHandlers(
  metrics: MetricsRegistry,
): ServiceHandlers<typeof metricsV1.MetricsServiceService> {
  return {
    getMetrics: unary<metricsV1.GetMetricsRequest, metricsV1.GetMetricsResponse>({
      validate: (req) => {
        const unknown = (req.readMask ?? []).filter((p) => !isMetricsPath(p));
        if (unknown.length === 0) return;
        const description = `unknown path${unknown.length > 1 ? 's' : ''} ${unknown.map((p) => JSON.stringify(p)).join(', ')}; the paths are the top-level fields of GetMetricsResponse: ${metricsPaths().join(', ')}`;
        throw new RpcError(Status.INVALID_ARGUMENT, 'INVALID_FIELD', `read_mask: ${description}`, {
          metadata: { field: 'read_mask' },
          fieldViolations: [{ field: 'read_mask', description }],
        });
      },
      handle: (req) => metrics.snapshot(req.readMask ?? []),
    }),
    getPrometheusMetrics: unary<
      metricsV1.GetPrometheusMetricsRequest,
      metricsV1.GetPrometheusMetricsResponse
    >({
      handle: async () => ({ text: await metrics.prometheusText(), contentType: PROMETHEUS_CONTENT_TYPE }),
    }),
  };
}
