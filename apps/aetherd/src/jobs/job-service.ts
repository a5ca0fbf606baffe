import { type jobsV1 } from '@aether/proto';
import { unary, UnimplementedError, type ServiceHandlers } from '@aether/rpc';
import { jobPolicyResource, type JobDefaults } from './job-policy-resource';

/**
 * JobService. Policy already sees a submitted job exactly as it would run (network, mounts, devices,
 * effective limits); running it lands with the jobs capability, until then SubmitJob answers
 * UNIMPLEMENTED after the policy decision.
 */
export function jobServiceHandlers(defaults: JobDefaults): ServiceHandlers<typeof jobsV1.JobServiceService> {
  return {
    submitJob: unary<jobsV1.SubmitJobRequest, jobsV1.SubmitJobResponse>({
      mutates: true,
      resource: (req) => jobPolicyResource(req.spec, defaults),
      handle: () => Promise.reject(new UnimplementedError('/aether.jobs.v1.JobService/SubmitJob')),
    }),
  };
}
