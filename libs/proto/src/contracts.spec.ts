import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { descriptorSet, jobsV1 } from './index';
import { dateFromTimestamp, durationFromMs, msFromDuration, timestampFromDate } from './well-known';

describe('the generated contracts', () => {
  it('ship a descriptor set that defines every Aether service and the well-known types they import', () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet()));
    for (const s of [
      'aether.jobs.v1.JobService',
      'aether.artifacts.v1.ArtifactService',
      'aether.memory.v1.MemoryService',
      'aether.events.v1.EventService',
      'aether.metrics.v1.MetricsService',
      'aether.governance.v1.PolicyService',
      'aether.intents.v1.IntentService',
      'aether.models.v1.ModelRuntimeService',
      'grpc.health.v1.Health',
    ]) {
      expect(registry.getService(s)).toBeDefined();
    }
    expect(registry.getFile('google/protobuf/timestamp.proto')).toBeDefined();
  });

  it('keep 64-bit integers exact (bigint), beyond 2^53', () => {
    const big = 2n ** 60n + 1n;
    const bytes = jobsV1.StreamJobLogsResponse.encode(
      jobsV1.StreamJobLogsResponse.fromPartial({ offset: big }),
    ).finish();
    expect(jobsV1.StreamJobLogsResponse.decode(bytes).offset).toBe(big);
  });

  it('convert timestamps and durations without drift', () => {
    const d = new Date('2026-11-21T10:20:30.456Z');
    expect(dateFromTimestamp(timestampFromDate(d)).toISOString()).toBe(d.toISOString());
    expect(timestampFromDate(new Date(-1500))).toEqual({ seconds: -2n, nanos: 500_000_000 });
    expect(msFromDuration(durationFromMs(90_061.5))).toBe(90_061.5);
  });
});
