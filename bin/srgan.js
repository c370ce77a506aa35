#!/usr/bin/env node
// The CLI lives in dist/ (built from src/ by `npm install` / `npm run build`).
import '../dist/cli/main.js';
