#!/usr/bin/env python3
"""Writes torchvision's VGG16 (IMAGENET1K_V1) features[0..14] as a tfjs LayersModel for srgan's
perceptual loss (perceptual.kind "vgg16"; see docs/perceptual.md).

    pip install torch torchvision numpy
    python3 scripts/export-vgg16.py OUT_DIR          # downloads the weights once (~528 MB, torch hub cache)
    srgan start --config '{"perceptual": {"kind": "vgg16", "path": "OUT_DIR/model.json"}}'

Run it on a machine with internet access; srgan itself never downloads anything. The result is
OUT_DIR/model.json plus two weight shards, about 7 MB: the 7 convolutions conv1_1 ... conv3_3 and the two
max-pools between them (docs/seed.md §4.2), in a Keras Sequential topology with Keras' VGG16 layer names.

    --random   write random weights (PyTorch's default init) instead; needs numpy only. For testing the
               file format, not for training.

Conventions (docs/seed.md §1): PyTorch stores conv weights OIHW, tfjs wants HWIO, hence transpose(2, 3, 1, 0).
Padding 1 on a 3x3 kernel at stride 1 equals Keras 'same'; MaxPool2d(2) floors like Keras 'valid'. The
inputs stay torchvision's: RGB in [0, 1], normalised with the ImageNet mean/std by srgan
(perceptual.preprocess "torch", the default).
"""

import argparse
import json
import os
import sys

import numpy as np

# (Keras name, torchvision features index or None for a pool, in channels, out channels)
LAYERS = [
    ("block1_conv1", 0, 3, 64),
    ("block1_conv2", 2, 64, 64),
    ("block1_pool", None, 0, 0),
    ("block2_conv1", 5, 64, 128),
    ("block2_conv2", 7, 128, 128),
    ("block2_pool", None, 0, 0),
    ("block3_conv1", 10, 128, 256),
    ("block3_conv2", 12, 256, 256),
    ("block3_conv3", 14, 256, 256),
]
SHARD_BYTES = 4 * 1024 * 1024


def torchvision_weights():
    """{features index: (OIHW weight, bias)} from torchvision's IMAGENET1K_V1 VGG16."""
    try:
        import torchvision
    except ImportError:
        sys.exit("export-vgg16: needs torch and torchvision (pip install torch torchvision), or --random")
    model = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    out = {}
    for _, index, _, _ in LAYERS:
        if index is not None:
            conv = model.features[index]
            out[index] = (conv.weight.detach().cpu().numpy(), conv.bias.detach().cpu().numpy())
    return out


def random_weights(seed):
    """PyTorch's default Conv2d init, U(+-1/sqrt(fan_in)), in OIHW."""
    rng = np.random.default_rng(seed)
    out = {}
    for _, index, cin, cout in LAYERS:
        if index is not None:
            bound = 1 / np.sqrt(9 * cin)
            out[index] = (rng.uniform(-bound, bound, (cout, cin, 3, 3)), rng.uniform(-bound, bound, cout))
    return out


def conv_config(name, cout, first):
    config = {
        "name": name,
        "trainable": False,
        "filters": cout,
        "kernel_size": [3, 3],
        "strides": [1, 1],
        "padding": "same",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "activation": "relu",
        "use_bias": True,
        "kernel_initializer": {"class_name": "Zeros", "config": {}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }
    if first:
        config["batch_input_shape"] = [None, None, None, 3]
        config["dtype"] = "float32"
    return {"class_name": "Conv2D", "config": config}


def pool_config(name):
    return {
        "class_name": "MaxPooling2D",
        "config": {
            "name": name,
            "trainable": False,
            "pool_size": [2, 2],
            "strides": [2, 2],
            "padding": "valid",
            "data_format": "channels_last",
        },
    }


def export(out_dir, weights, source):
    layers, specs, blobs = [], [], []
    for name, index, _, cout in LAYERS:
        if index is None:
            layers.append(pool_config(name))
            continue
        w, b = weights[index]
        hwio = np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)), dtype="<f4")
        bias = np.ascontiguousarray(b, dtype="<f4")
        layers.append(conv_config(name, cout, first=not specs))
        for suffix, array in (("kernel", hwio), ("bias", bias)):
            specs.append({"name": f"{name}/{suffix}", "shape": list(array.shape), "dtype": "float32"})
            blobs.append(array.tobytes())
    data = b"".join(blobs)
    count = max(1, -(-len(data) // SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{count}.bin" for i in range(count)]
    os.makedirs(out_dir, exist_ok=True)
    for i, path in enumerate(paths):
        with open(os.path.join(out_dir, path), "wb") as f:
            f.write(data[i * SHARD_BYTES:(i + 1) * SHARD_BYTES])
    model = {
        "format": "layers-model",
        "generatedBy": "srgan scripts/export-vgg16.py",
        "convertedBy": None,
        "modelTopology": {
            "class_name": "Sequential",
            "config": {"name": "vgg16_features", "layers": layers},
            "keras_version": "tfjs-layers 4.22.0",
            "backend": "tensor_flow.js",
        },
        "weightsManifest": [{"paths": paths, "weights": specs}],
        "userDefinedMetadata": {"srgan": {"source": source, "preprocess": "torch"}},
    }
    tmp = os.path.join(out_dir, "model.json.tmp")
    with open(tmp, "w") as f:
        json.dump(model, f)
    os.replace(tmp, os.path.join(out_dir, "model.json"))
    print(f"wrote {os.path.join(out_dir, 'model.json')} and {count} shard(s), {len(data)} bytes of weights ({source})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--random", action="store_true", help="random weights (format tests; numpy only)")
    parser.add_argument("--seed", type=int, default=1, help="seed for --random")
    args = parser.parse_args()
    if args.random:
        export(args.out_dir, random_weights(args.seed), f"random weights, seed {args.seed}")
    else:
        export(args.out_dir, torchvision_weights(), "torchvision vgg16 IMAGENET1K_V1 features[0..14]")


if __name__ == "__main__":
    main()
