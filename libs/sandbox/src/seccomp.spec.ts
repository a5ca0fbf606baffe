import {
  BLOCKED_SYSCALLS,
  CLONE_NAMESPACE_FLAGS,
  defaultSeccompProfile,
  seccompArchitectures,
} from './seccomp';

describe('defaultSeccompProfile', () => {
  const profile = defaultSeccompProfile('x64');

  it('allows by default and filters every ABI of the host', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(defaultSeccompProfile('arm64').architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(seccompArchitectures('riscv64')).toEqual([]);
    expect(defaultSeccompProfile().architectures).toEqual(seccompArchitectures(process.arch));
  });

  it('answers the blocked syscalls with EPERM, unconditionally', () => {
    const rule = profile.syscalls[0]!;
    expect(rule).toEqual({ names: [...BLOCKED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: 1 });
    for (const name of [
      'mount',
      'umount2',
      'pivot_root',
      'chroot',
      'ptrace',
      'process_vm_readv',
      'process_vm_writev',
      'kexec_load',
      'bpf',
      'io_uring_setup',
      'keyctl',
      'add_key',
      'request_key',
      'unshare',
      'setns',
      'init_module',
      'finit_module',
      'delete_module',
      'swapon',
      'reboot',
      'syslog',
      'settimeofday',
      'clock_settime',
      'perf_event_open',
      'userfaultfd',
      'open_by_handle_at',
      'name_to_handle_at',
      'iopl',
      'ioperm',
      'fsopen',
      'move_mount',
      'open_tree',
      'mount_setattr',
      'vhangup',
      'uselib',
    ])
      expect(BLOCKED_SYSCALLS).toContain(name);
    expect(new Set(BLOCKED_SYSCALLS).size).toBe(BLOCKED_SYSCALLS.length);
    // Ordinary programs need these; personality is left allowed on purpose.
    for (const name of ['clone', 'clone3', 'execve', 'personality', 'socket'])
      expect(BLOCKED_SYSCALLS).not.toContain(name);
  });

  it('refuses clone with any CLONE_NEW* flag, one masked rule per flag', () => {
    const cloneRules = profile.syscalls.filter((r) => r.names.includes('clone'));
    expect(cloneRules).toHaveLength(7);
    const flags = cloneRules.map((r) => {
      expect(r).toMatchObject({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 });
      expect(r.args).toHaveLength(1);
      const a = r.args![0]!;
      expect(a.index).toBe(0);
      expect(a.op).toBe('SCMP_CMP_MASKED_EQ');
      expect(a.valueTwo).toBe(a.value);
      return a.value;
    });
    expect(flags.sort()).toEqual(Object.values(CLONE_NAMESPACE_FLAGS).sort());
    // Together they cover the 0x7E020000 namespace mask.
    expect(flags.reduce((m, f) => m | f, 0)).toBe(0x7e020000);
  });

  it('answers clone3 with ENOSYS so libc falls back to clone', () => {
    expect(profile.syscalls.filter((r) => r.names.includes('clone3'))).toEqual([
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ]);
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(profile))).toEqual(profile);
  });
});
