import type { OciSeccomp, OciSeccompSyscall } from './oci-types';

/** errno values the profile returns. */
const EPERM = 1;
const ENOSYS = 38;

/**
 * Syscalls the default profile answers with EPERM whatever their arguments. Grouped by why a job has
 * no business making them; most also need a capability the job lacks, so the filter is a second
 * wall that still holds for a profile that keeps capabilities or runs as root inside.
 */
export const BLOCKED_SYSCALLS: readonly string[] = Object.freeze([
  // Changing the mount table or the root: the sandbox's file view is fixed by the runtime.
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'chroot',
  'mount_setattr',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  // Reading or writing other processes' memory, or tracing them.
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  // Namespaces: a job must not build its own sandbox inside ours (and user namespaces are the
  // usual way to reach kernel code that otherwise needs CAP_SYS_ADMIN). clone/clone3 are below.
  'unshare',
  'setns',
  // Loading kernel code or a new kernel, and the kernel's keyring.
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'create_module',
  'bpf',
  'keyctl',
  'add_key',
  'request_key',
  // Whole-machine state: swap, reboot, the kernel log, accounting, clocks, quotas.
  'swapon',
  'swapoff',
  'reboot',
  'syslog',
  'acct',
  'settimeofday',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  'stime',
  'quotactl',
  'nfsservctl',
  'lookup_dcookie',
  'vhangup',
  // Raw hardware access.
  'iopl',
  'ioperm',
  // Side channels and kernel attack surface: perf counters, userfaultfd (used to widen kernel races),
  // file handles (escape a bind mount by inode handle), fanotify, the old a.out loader.
  'perf_event_open',
  'userfaultfd',
  'open_by_handle_at',
  'name_to_handle_at',
  'fanotify_init',
  'uselib',
  // io_uring: a large, fast-moving kernel surface behind which syscalls bypass this very filter.
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
]);

/**
 * The CLONE_NEW* flags refused in `clone`'s flags argument. `personality` is deliberately left
 * allowed: without capabilities its dangerous settings are harmless, and filtering it by value
 * would need allow rules that libseccomp may not order the way the spec text suggests.
 */
export const CLONE_NAMESPACE_FLAGS: Readonly<Record<string, number>> = Object.freeze({
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
});

/** The seccomp architectures of the host: the native one plus the compat ABIs a binary may use. */
export function seccompArchitectures(arch: string = process.arch): string[] {
  switch (arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    default:
      // An empty list means the native architecture only; compat ABIs stay unfiltered there.
      return [];
  }
}

/**
 * The default seccomp profile for jobs: allow by default, deny what a job has no business doing.
 * A deny list (not Docker's allow list) so that ordinary programs — compilers, interpreters, test
 * runners — never meet a missing syscall; the sandbox's other walls (no capabilities, no_new_privs,
 * namespaces, read-only system) do the rest.
 *
 * @param arch - Node's `process.arch` naming; defaults to the running one.
 */
export function defaultSeccompProfile(arch: string = process.arch): OciSeccomp {
  const syscalls: OciSeccompSyscall[] = [
    { names: [...BLOCKED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    // clone can create namespaces through its flags (argument 0 on every architecture but s390,
    // which this profile does not target). Conditions within one rule are AND-ed, so "any of these
    // bits set" needs one rule per bit.
    ...Object.values(CLONE_NAMESPACE_FLAGS).map((flag): OciSeccompSyscall => ({
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
    })),
    // clone3 passes its flags in a struct in memory that seccomp cannot read. ENOSYS (not EPERM)
    // makes glibc and Go fall back to clone, where the rules above see the flags.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
  ];
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: seccompArchitectures(arch), syscalls };
}
