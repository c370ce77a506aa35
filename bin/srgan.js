#!/usr/bin/env node
// The CLI lives in dist/ (built from src/ by `npm install` / `npm run build`).
import { run } from '../dist/cli/main.js';

await run(process.argv.slice(2));
