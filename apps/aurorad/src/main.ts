#!/usr/bin/env node
import { runDaemon } from '@aether/daemon';
import { aurorad } from './aurorad';

void runDaemon(aurorad);
