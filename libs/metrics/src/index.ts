export {
  MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
  isMetricsPath,
  metricsPaths,
  type SectionName,
  type SectionOptions,
  type SectionProvider,
  type SectionTypes,
} from './metrics-registry';
export { LatencyRecorder, LabeledLatencyRecorder, LATENCY_BUCKETS } from './latency-recorder';
export { estimateQuantile, type CumulativeBucket } from './quantiles';
export { sectionFamilies, type Family, type Sample } from './prometheus-families';
export { RpcMetrics } from './rpc-metrics';
export { PolicyMetrics, type PolicySource } from './policy-metrics';
export { AuditMetrics, type AuditSource } from './audit-metrics';
export {
  ProcessMetrics,
  EventLoopDelay,
  openFileDescriptors,
  type EventLoopDelayOptions,
} from './process-metrics';
export { HostMetrics } from './host-metrics';
export { startScrapeListener, type ScrapeListener, type ScrapeListenerOptions } from './scrape-listener';
