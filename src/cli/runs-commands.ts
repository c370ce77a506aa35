// The commands that read runs.db: runs, show, metrics, compare (their work is in runs.ts) and models.

import { compareCommand, metricsCommand, runsCommand, showCommand } from './runs.js';
import { printTable } from './format.js';
import { json, type Command } from './flags.js';

/** --db FILE, repeatable: read these runs databases (as one) instead of $SRGAN_HOME/runs.db. */
const db = { type: 'string', multiple: true } as const;
const dbHelp = {
  '--db FILE':
    "read this runs.db instead of $SRGAN_HOME's (repeatable: several, e.g. each queue worker's, are read as one; a run that moved between workers is one run)",
};

export const runsCommands = {
  models: {
    summary: 'list the training presets with their networks, parameter counts and FLOPs per step',
    usage: 'srgan models [--json]',
    options: { json },
    help: { '--json': 'print one JSON object {presets: [...]}' },
    async run(v) {
      const { summarizePresets } = await import('./models.js');
      const presets = await summarizePresets();
      if (v.json) {
        console.log(JSON.stringify({ presets }));
        return 0;
      }
      printTable(
        ['PRESET', 'SCALE', 'GENERATOR', 'G PARAMS', 'DISCRIMINATOR', 'D PARAMS', 'BATCH×PATCH', 'D STEPS', 'GFLOP/STEP'],
        presets.map((p) => [
          p.preset,
          `×${p.scale}`,
          p.generator.kind,
          p.generator.params.toLocaleString('en-US'),
          p.discriminator.kind,
          p.discriminator.params.toLocaleString('en-US'),
          `${p.batchSize}×${p.patchSize}²`,
          String(p.dStepsPerG),
          String(p.gflopsPerStep),
        ]),
      );
      return 0;
    },
  },
  runs: {
    summary: 'list training runs stored in $SRGAN_HOME/runs.db (or the --db files)',
    usage: 'srgan runs [--json] [--status STATUS[,STATUS...]] [--db FILE ...]',
    options: { json, status: { type: 'string' }, db },
    help: {
      ...dbHelp,
      '--json': 'print one JSON object {db, runs}',
      '--status S[,S]': 'only runs with one of these statuses (starting, training, paused, stopped, failed)',
    },
    run: (v) => runsCommand(v),
  },
  show: {
    summary: 'show one run: its row, config, latest metrics, checkpoints, event counts and last error',
    usage: 'srgan show RUN [--json] [--db FILE ...]',
    options: { json, db },
    positionals: [1, 1],
    help: { RUN: 'the run id, a unique prefix of it, or the run name', '--json': 'print one JSON object', ...dbHelp },
    run: (v, args) => showCommand(v, args),
  },
  metrics: {
    summary: "print a run's metric curves as a table, CSV or JSON",
    usage: 'srgan metrics RUN [--key KEY ...] [--csv | --json] [--every N] [--db FILE ...]',
    options: { key: { type: 'string', multiple: true }, csv: { type: 'boolean' }, json, every: { type: 'string' }, db },
    positionals: [1, 1],
    help: {
      RUN: 'the run id, a unique prefix of it, or the run name',
      '--key KEY': 'only this metric (repeatable; default: every key the run logged)',
      '--csv': 'print CSV with the header step,key,value,wall_time',
      '--json': 'print one JSON object {run, keys, every, points}',
      '--every N': 'keep every Nth point of each curve (and always the last)',
      ...dbHelp,
    },
    run: (v, args) => metricsCommand(v, args),
  },
  compare: {
    summary: 'compare runs side by side: final and best metrics, steps, status and config differences',
    usage: 'srgan compare RUN RUN... [--key KEY ...] [--json] [--db FILE ...]',
    options: { key: { type: 'string', multiple: true }, json, db },
    positionals: [2, Number.POSITIVE_INFINITY],
    help: {
      RUN: 'a run id, a unique prefix of it, or a run name (two or more)',
      '--key KEY': 'only this metric (repeatable; default: every key the runs logged)',
      '--json': 'print one JSON object {runs, metrics, config}',
      ...dbHelp,
    },
    run: (v, args) => compareCommand(v, args),
  },
} satisfies Record<string, Command>;
