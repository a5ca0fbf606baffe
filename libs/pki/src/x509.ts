/**
 * Single place that loads `@peculiar/x509`, so the metadata polyfill its dependency injection needs
 * (`reflect-metadata`) is always loaded before it and the WebCrypto provider is always configured.
 *
 * @internal
 */
import 'reflect-metadata';

import { webcrypto } from 'node:crypto';

import * as x509 from '@peculiar/x509';

// Node's own WebCrypto: no native addon and no JS crypto re-implementation.
x509.cryptoProvider.set(webcrypto);

export { x509, webcrypto };
