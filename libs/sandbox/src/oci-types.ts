// A typed subset of the OCI runtime-spec 1.0.2 `config.json`: only the members this package writes.
// Field names are the spec's, so `JSON.stringify` of these values is a valid config.

/** A seccomp action as runc/libseccomp spell it. */
export type OciSeccompAction =
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_LOG';

/** A seccomp argument comparison operator. */
export type OciSeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

/** One condition on a syscall argument; several on one rule are AND-ed. */
export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: OciSeccompOperator;
}

/** One seccomp rule: `action` for the named syscalls when all `args` conditions hold. */
export interface OciSeccompSyscall {
  names: string[];
  action: OciSeccompAction;
  /** errno returned with SCMP_ACT_ERRNO (runc defaults to EPERM when absent). */
  errnoRet?: number;
  args?: OciSeccompArg[];
}

/** `linux.seccomp`. */
export interface OciSeccomp {
  defaultAction: OciSeccompAction;
  architectures: string[];
  syscalls: OciSeccompSyscall[];
}

/** `process.capabilities`: the five capability sets. */
export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  inheritable: string[];
  permitted: string[];
  ambient: string[];
}

/** `process.rlimits[]`. */
export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

/** `process`. */
export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits: OciRlimit[];
  noNewPrivileges: boolean;
  oomScoreAdj?: number;
}

/** `mounts[]`. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** `linux.namespaces[]`; no `path` means a new namespace. */
export interface OciNamespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
  path?: string;
}

/** `linux.devices[]`: a device node created in the container. */
export interface OciDevice {
  type: 'c' | 'b' | 'u' | 'p';
  path: string;
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** `linux.resources.devices[]`: a device cgroup rule; absent major/minor match any. */
export interface OciDeviceCgroupRule {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access?: string;
}

/** `linux.resources.blockIO.throttle*Device[]`. */
export interface OciThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

/** `linux.resources`. */
export interface OciResources {
  devices: OciDeviceCgroupRule[];
  memory?: { limit?: number; swap?: number; swappiness?: number };
  cpu?: { shares?: number; quota?: number; period?: number };
  pids?: { limit: number };
  blockIO?: {
    throttleReadBpsDevice?: OciThrottleDevice[];
    throttleWriteBpsDevice?: OciThrottleDevice[];
  };
}

/** `linux`. */
export interface OciLinux {
  namespaces: OciNamespace[];
  devices: OciDevice[];
  cgroupsPath: string;
  resources: OciResources;
  seccomp?: OciSeccomp;
  maskedPaths: string[];
  readonlyPaths: string[];
}

/** The runtime-spec 1.0.2 `config.json` subset written by {@link buildOciConfig}. */
export interface OciConfig {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: OciLinux;
}
