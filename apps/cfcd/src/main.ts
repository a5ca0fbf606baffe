#!/usr/bin/env node
import { runDaemon } from '@aether/daemon';
import { cfcd } from './cfcd';

void runDaemon(cfcd);
