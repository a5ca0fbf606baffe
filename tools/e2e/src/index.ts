export { Stack, type StackOptions, type DaemonProcess, DAEMON_NAMES, repoRoot } from './stack';
export { ScriptedModelServer, type ModelRequest, type Script } from './openai-test-server';
export { initializer, linear, linearModel, valueInfo } from './onnx-models';
