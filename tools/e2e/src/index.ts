export { Stack, type StackOptions, type DaemonProcess, DAEMON_NAMES, repoRoot } from './stack';
