// The layer rule of docs/architecture.md, checked by `npm test` (`depcruise src`). tsc checks that every
// import resolves; this checks where they point.
//
// Layers, lowest first; a module may import its own layer and the ones below, never one above.
// store/ and data/ share a level and do not import each other. Type-only imports count: a type that
// names a higher layer ties the two together just the same.
const LAYERS = [['util'], ['config'], ['store', 'data'], ['models'], ['protocol'], ['trainer'], ['actors'], ['daemon'], ['cli']];

const folder = (names) => `^src/(${names.join('|')})/`;

/** One rule per level: nothing in it imports a folder of a higher level, or a peer at its own. */
const upward = LAYERS.slice(0, -1).flatMap((level, i) => {
  const above = LAYERS.slice(i + 1).flat();
  return level.map((name) => {
    const peers = level.filter((n) => n !== name);
    return {
      name: `layer-${name}`,
      comment: `src/${name}/ imports only lower layers (${LAYERS.slice(0, i).flat().join(', ') || 'none'})${peers.length ? `, not its peer ${peers.join(', ')}` : ''}`,
      severity: 'error',
      from: { path: folder([name]) },
      to: { path: folder([...above, ...peers]) },
    };
  });
});

// The threads that must never load tfjs (docs/architecture.md, "Threads"): the daemon's main thread
// (daemon/, actors/, store/, config/, util/, and protocol/, which every thread shares) and the loader
// workers (actors/loader-worker.ts and data/). tfjs belongs to the trainer worker (trainer/, models/);
// the CLI loads it for `srgan upscale` and `srgan eval`.
const TFJS_FREE = ['^src/(daemon|actors|store|config|util|protocol|data)/'];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
    {
      name: 'layer-folders',
      comment: `Every module under src/ lives in a layer folder (${LAYERS.flat().join(', ')}).`,
      severity: 'error',
      from: { path: '^src/', pathNot: folder(LAYERS.flat()) },
      to: {},
    },
    {
      name: 'layer-folders',
      comment: `Every module under src/ lives in a layer folder (${LAYERS.flat().join(', ')}).`,
      severity: 'error',
      from: {},
      to: { path: '^src/', pathNot: folder(LAYERS.flat()) },
    },
    {
      name: 'no-tfjs-off-the-trainer',
      comment:
        'The daemon main thread and the loader workers never reach @tensorflow/*, not even through a type-only import: ' +
        'tfjs (and tfjs-node, which only one thread of a process may load) belongs to the trainer worker.',
      severity: 'error',
      from: { path: TFJS_FREE },
      to: { path: '(^|/)node_modules/@tensorflow/', reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
  },
};
