// Exports a generator as an ONNX model (docs/export.md, "ONNX"): NCHW float32 `input` [N, 3, H, W], RGB
// in [0, 1], any N, H and W; `output` [N, 3, H·s, W·s], not clipped; opset 17, IR version 8 (ONNX 1.12).
//
// Like the LayersModel export (export-layers.ts), no architecture is written here: the network's own
// description (archs/graph.ts) is run on ONNX nodes instead of tensors, so a layer added to a generator
// is in its ONNX file too. test/integration/export-onnx.test.ts runs every kind and layout in ONNX
// Runtime against gen.apply. The protobuf messages are onnx-proto's (ONNX 1.10's onnx.proto compiled by
// protobufjs), not hand-encoded. Op by op:
//
//  conv             Conv, weights transposed from our HWIO [kh, kw, in, out] to OIHW; 'same' padding as
//                   tfjs computes it (total d·(k − 1), the odd pixel at the end), stride 1, dilation d.
//  leaky, prelu     LeakyRelu; PRelu with slopes [C, 1, 1] (broadcast over H and W).
//  residual x + s·y Mul by a scalar constant, then Add: the float ops tfjs does.
//  concat           Concat on axis 1 (channels).
//  pixel shuffle r  DepthToSpace mode DCR: out[c, r·h + i, r·w + j] = in[(i·r + j)·C + c, h, w], the order
//                   of tf.depthToSpace (block-major), which ONNX's default DCR mode is.
//  nearest ×2       Resize nearest, 'asymmetric' coordinates, nearest_mode 'floor': out[i] = in[⌊i/2⌋].
//  bilinear skip    Resize linear, 'half_pixel': source x = (i + ½)/r − ½, clamped to the image at the
//                   edges, which is tf.image.resizeBilinear(x, [r·h, r·w], false, true) (checked on odd
//                   sizes, where the edge clamping shows, by the test above).
//  block            nothing: recomputing is a training matter.

import fs from 'node:fs';

import onnxProto from 'onnx-proto';

import type { Generator } from '../archs/network.js';
import type { GraphOps } from '../archs/graph.js';
import { generatorGraph } from '../archs/build.js';
import { STATE_DICT_ARCH } from './state-dict-names.js';
import type { GeneratorConfig } from '../../config/presets.js';

const { onnx } = onnxProto;

/** The opset the export targets: Resize's modes and DepthToSpace's DCR mode are as in opset 13+. */
export const ONNX_OPSET = 17;
/** The IR version that goes with opset 17 (ONNX 1.12); onnx-proto's schema is that version's. */
const ONNX_IR_VERSION = 8;

/**
 * metadata_props to record besides arch, scale and config (run_id, step, preset, val_gain, …); entries
 * left undefined are not written.
 */
export type OnnxExportMetadata = Readonly<Record<string, string | undefined>>;

/** A symbolic NCHW tensor: the ONNX value name and its channel count. */
interface Sym {
  name: string;
  ch: number;
}

type Attr = InstanceType<typeof onnx.AttributeProto>;

/** Accumulates ONNX nodes and initializers for one generator, reading weights from its variables. */
class OnnxGraph {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  readonly #used = new Set<string>();
  readonly #counters = new Map<string, number>();
  readonly #constants = new Map<string, string>();

  constructor(readonly variables: Generator['variables']) {}

  /** A fresh value or node name `${prefix}_${n}` (our layer names have no `_n` suffix of this form; node() checks). */
  auto(prefix: string): string {
    const n = (this.#counters.get(prefix) ?? 0) + 1;
    this.#counters.set(prefix, n);
    return `${prefix}_${n}`;
  }

  node(opType: string, inputs: string[], name: string, ch: number, attrs: Attr[] = []): Sym {
    if (this.nodes.some((n) => n.name === name)) throw new RangeError(`export-onnx: duplicate node name '${name}'`);
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: [name], name, attribute: attrs }));
    return { name, ch };
  }

  initializer(name: string, dims: number[], values: Float32Array): string {
    if (values.length !== dims.reduce((a, d) => a * d, 1))
      throw new RangeError(`export-onnx: ${name} has ${values.length} values for [${dims}]`);
    this.initializers.push(
      onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: littleEndian(values) }),
    );
    return name;
  }

  /** A float constant shared by every node that needs the same values (the residual scales, Resize's scales). */
  constant(prefix: string, dims: number[], values: number[]): string {
    const key = `${dims.join('x')}:${values.join(',')}`;
    let name = this.#constants.get(key);
    if (name === undefined) {
      name = this.initializer(this.auto(prefix), dims, Float32Array.from(values));
      this.#constants.set(key, name);
    }
    return name;
  }

  /** Our variable `name`, checked against the shape the graph needs; each is used once. */
  variable(name: string, shape: number[]): Float32Array {
    const v = this.variables[name];
    if (v === undefined) throw new RangeError(`config does not describe gen: it has no variable '${name}'`);
    if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
      throw new RangeError(`config does not describe gen: variable '${name}' has shape [${v.shape}], the config needs [${shape}]`);
    }
    if (this.#used.has(name)) throw new RangeError(`export-onnx: variable '${name}' used twice`);
    this.#used.add(name);
    if (v.dtype !== 'float32') throw new RangeError(`variable '${name}' is ${v.dtype}, not float32`);
    return v.dataSync<'float32'>();
  }

  /** Variables of gen that no node read. */
  unused(): string[] {
    return Object.keys(this.variables).filter((k) => !this.#used.has(k));
  }

  conv(name: string, x: Sym, k: number, cout: number, dilation = 1): Sym {
    const hwio = this.variable(`${name}.w`, [k, k, x.ch, cout]);
    const oihw = new Float32Array(hwio.length);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        for (let ci = 0; ci < x.ch; ci++) {
          for (let co = 0; co < cout; co++) oihw[((co * x.ch + ci) * k + i) * k + j] = hwio[((i * k + j) * x.ch + ci) * cout + co];
        }
      }
    }
    const w = this.initializer(`${name}.weight`, [cout, x.ch, k, k], oihw);
    const b = this.initializer(`${name}.bias`, [cout], this.variable(`${name}.b`, [cout]));
    // tfjs 'same' at stride 1: total padding d·(k − 1), the smaller half first.
    const total = dilation * (k - 1);
    const begin = Math.floor(total / 2);
    const end = total - begin;
    return this.node('Conv', [x.name, w, b], name, cout, [
      ints('kernel_shape', [k, k]),
      ints('dilations', [dilation, dilation]),
      ints('strides', [1, 1]),
      ints('pads', [begin, begin, end, end]),
    ]);
  }

  prelu(name: string, x: Sym): Sym {
    const slope = this.initializer(`${name}.alpha`, [x.ch, 1, 1], this.variable(`${name}.alpha`, [x.ch]));
    return this.node('PRelu', [x.name, slope], name, x.ch);
  }

  resize(x: Sym, r: number, prefix: string, attrs: Attr[]): Sym {
    const scales = this.constant('scales', [4], [1, 1, r, r]);
    // Inputs X, roi (unused: empty name), scales.
    return this.node('Resize', [x.name, '', scales], this.auto(prefix), x.ch, attrs);
  }

  ops(): GraphOps<Sym> {
    return {
      conv: (name, x, k, cout, dilation) => this.conv(name, x, k, cout, dilation),
      leaky: (x, alpha) => this.node('LeakyRelu', [x.name], this.auto('lrelu'), x.ch, [float('alpha', alpha)]),
      prelu: (name, x) => this.prelu(name, x),
      add: (a, b) => this.node('Add', [a.name, b.name], this.auto('add'), a.ch),
      residual: (x, y, s) => {
        const scaled = this.node('Mul', [y.name, this.constant('residual_scale', [], [s])], this.auto('scale'), y.ch);
        return this.node('Add', [x.name, scaled.name], this.auto('add'), x.ch);
      },
      concat: (xs) =>
        xs.length === 1
          ? xs[0]
          : this.node(
              'Concat',
              xs.map((s) => s.name),
              this.auto('concat'),
              xs.reduce((a, s) => a + s.ch, 0),
              [int('axis', 1)],
            ),
      pixelShuffle: (x, r) => {
        if (x.ch % (r * r) !== 0) throw new RangeError(`export-onnx: ${x.ch} channels cannot be shuffled by ${r}`);
        return this.node('DepthToSpace', [x.name], this.auto('pixel_shuffle'), x.ch / (r * r), [int('blocksize', r), str('mode', 'DCR')]);
      },
      upsampleNearest2x: (x) =>
        this.resize(x, 2, 'upsample', [
          str('mode', 'nearest'),
          str('coordinate_transformation_mode', 'asymmetric'),
          str('nearest_mode', 'floor'),
        ]),
      resizeBilinear: (x, r) =>
        this.resize(x, r, 'skip_bilinear', [str('mode', 'linear'), str('coordinate_transformation_mode', 'half_pixel')]),
      block: (_name, x, f) => f(x),
    };
  }
}

const int = (name: string, i: number): Attr => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
const ints = (name: string, v: number[]): Attr =>
  onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
const float = (name: string, f: number): Attr => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f });
const str = (name: string, s: string): Attr =>
  onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(s) });

/** ONNX raw_data is little-endian whatever the host. */
function littleEndian(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return out;
}

/** A float32 NCHW value [N, C, H, W] with symbolic N, H, W. */
function nchw(name: string, ch: number, dims: [string, string, string], doc: string): InstanceType<typeof onnx.ValueInfoProto> {
  const [n, h, w] = dims;
  return onnx.ValueInfoProto.create({
    name,
    docString: doc,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: [{ dimParam: n }, { dimValue: ch }, { dimParam: h }, { dimParam: w }] },
      },
    },
  });
}

/**
 * The ONNX model (serialised ModelProto) of `gen`, built from `config`: input `input` [N, 3, H, W], output
 * `output` [N, 3, H·scale, W·scale], opset 17; metadata_props `arch` (as in the safetensors export),
 * `scale`, `config` (JSON), then `metadata`'s entries (run_id, step, …; undefined ones left out). Throws RangeError when `config` does
 * not describe `gen` (a variable missing, of another shape, or left over).
 */
export function generatorOnnx(gen: Generator, config: GeneratorConfig, metadata: OnnxExportMetadata = {}): Uint8Array {
  const scale = gen.scale;
  if (scale !== 2 && scale !== 4) throw new RangeError(`gen.scale must be 2 or 4, got ${scale}`);
  const graph = generatorGraph(config, scale);
  const g = new OnnxGraph(gen.variables);
  const out = graph.forward(g.ops(), { name: 'input', ch: 3 });
  const unused = g.unused();
  if (unused.length > 0) throw new RangeError(`config does not describe gen: variables ${unused.join(', ')} are not in its graph`);
  if (out.ch !== 3) throw new RangeError(`export-onnx: the network ends with ${out.ch} channels, not 3`);
  // The graph's last node writes `output` (an Identity would do too, but renaming is free).
  const last = g.nodes.find((n) => n.output[0] === out.name);
  if (last === undefined) throw new RangeError('export-onnx: the network returns its input');
  last.output = ['output'];
  for (const n of g.nodes) n.input = n.input.map((i) => (i === out.name ? 'output' : i));

  const props: Record<string, string> = { arch: STATE_DICT_ARCH[config.kind], scale: String(scale), config: JSON.stringify(config) };
  for (const [k, v] of Object.entries(metadata)) if (v !== undefined) props[k] = v;
  const model = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'srgan-daemon',
    modelVersion: 1,
    docString: `srgan ${config.kind} generator ×${scale}: RGB in [0, 1], NCHW float32, output not clipped`,
    metadataProps: Object.entries(props).map(([key, value]) => ({ key, value })),
    graph: {
      name: `srgan_${config.kind}_x${scale}`,
      node: g.nodes,
      initializer: g.initializers,
      input: [nchw('input', 3, ['N', 'H', 'W'], 'RGB in [0, 1]')],
      output: [nchw('output', 3, ['N', `H*${scale}`, `W*${scale}`], `RGB, ×${scale}; not clipped (clip to [0, 1] before display)`)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes generatorOnnx(gen, config, metadata) to `file` (through a temporary file and a rename: never half a model). */
export function saveGeneratorOnnx(gen: Generator, config: GeneratorConfig, file: string, metadata: OnnxExportMetadata = {}): void {
  const bytes = generatorOnnx(gen, config, metadata);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
