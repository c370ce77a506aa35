// The layer rule of docs/architecture.md, checked by `npm test` (`depcruise src`). tsc checks that every
// import resolves; this checks where they point.
//
// Layers, lowest first; a module may import its own layer and the ones below, never one above.
// store/ and data/ share a level and do not import each other. Type-only imports count: a type that
// names a higher layer ties the two together just the same.
const LAYERS = [['util'], ['config'], ['store', 'data'], ['models'], ['protocol'], ['trainer'], ['actors'], ['daemon'], ['cli']];
// Inside models/, the same rule between its sub-folders: networks, then the backend ladder and model
// files, losses, training, inference.
const MODEL_LAYERS = [['archs'], ['backend', 'io'], ['losses'], ['train'], ['infer']];

const folder = (names, root = 'src') => `^${root}/(${names.join('|')})/`;

/** One rule per level of `layers` under `root`: nothing in it imports a folder of a higher level, or a peer at its own. */
const upward = (layers, root) =>
  layers.slice(0, -1).flatMap((level, i) => {
    const above = layers.slice(i + 1).flat();
    return level.map((name) => {
      const peers = level.filter((n) => n !== name);
      return {
        name: `layer-${root.replace(/^src\/?/, '').replace(/\//g, '-')}${root === 'src' ? '' : '-'}${name}`,
        comment: `${root}/${name}/ imports only lower layers (${layers.slice(0, i).flat().join(', ') || 'none'})${peers.length ? `, not its peer ${peers.join(', ')}` : ''}`,
        severity: 'error',
        from: { path: folder([name], root) },
        to: { path: folder([...above, ...peers], root) },
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
    ...upward(LAYERS, 'src'),
    ...upward(MODEL_LAYERS, 'src/models'),
    {
      name: 'models-folders',
      comment: `Every module under src/models/ lives in one of its sub-folders (${MODEL_LAYERS.flat().join(', ')}).`,
      severity: 'error',
      from: { path: '^src/models/', pathNot: folder(MODEL_LAYERS.flat(), 'src/models') },
      to: {},
    },
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
