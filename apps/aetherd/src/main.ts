#!/usr/bin/env node
import { runDaemon } from '@aether/daemon';
import { aetherd } from './aetherd';

void runDaemon(aetherd);
