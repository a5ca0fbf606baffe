export {
  probeHost,
  describeHost,
  cgroupLayout,
  findExecutable,
  type RuntimeName,
  type ProbeOptions,
  type Feature,
  type HostFacts,
} from './host-probe';
export {
  buildOciConfig,
  prepareRootfs,
  cpuWeightToShares,
  runcSharesToWeight,
  SandboxUnavailableError,
  DeviceUnavailableError,
  DEFAULT_PROFILE,
  DEFAULT_RLIMITS,
  MASKED_PATHS,
  READONLY_PATHS,
  CPU_PERIOD_US,
  type SandboxProfile,
  type JobSandbox,
  type JobResources,
} from './oci-config';
export {
  listNvidiaGpus,
  nvidiaGpuNodes,
  discoverNvidiaDriverPaths,
  visibleThroughSystemBinds,
  NVIDIA_REQUIRED_NODES,
  NVIDIA_OPTIONAL_NODES,
  NVIDIA_DRIVER_PROGRAMS,
  NVIDIA_LIBRARY_DIRS,
  type DeviceNode,
  type DriverDiscoveryOptions,
} from './gpu';
export {
  defaultSeccompProfile,
  seccompArchitectures,
  BLOCKED_SYSCALLS,
  CLONE_NAMESPACE_FLAGS,
} from './seccomp';
export {
  cgroupDirectories,
  removeCgroup,
  assertCgroupsPath,
  type CgroupDirectory,
  type CgroupPathOptions,
  type RemoveCgroupResult,
} from './cgroups';
export {
  parseProcCgroups,
  parseMountinfo,
  parseMeminfo,
  parseProcStatus,
  parseKernelRelease,
  parseVersionOutput,
  parseRuntimeFeatures,
  type CgroupSubsystem,
  type MountInfo,
  type RuntimeFeatures,
} from './proc-parsers';
export type * from './oci-types';
