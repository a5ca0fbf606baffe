/**
 * The one place that loads Cedar (`@cedar-policy/cedar-wasm`, Node build). Everything else imports it
 * from here, so the V8 setting below is in place before any policy code runs hot.
 *
 * Node 20's V8 inlines calls from optimized JavaScript into WebAssembly exports
 * (`--turbo-inline-js-wasm-calls`). When such a caller is deoptimized lazily, while Cedar is running (a
 * garbage collection invalidates its code), V8 aborts the whole process in
 * `Deoptimizer::DoComputeBuiltinContinuation` ("unreachable code"). The policy benchmark hit it in about
 * half of its runs; with the inlining off, never (0 of 18 runs). The inlining saves nanoseconds on a call
 * that takes tens of microseconds, so it is turned off for the process.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');

export * from '@cedar-policy/cedar-wasm/nodejs';
