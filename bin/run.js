#!/usr/bin/env node
// oclif entry point: commands live in dist/src/cli/commands (built from src/cli/commands).
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
