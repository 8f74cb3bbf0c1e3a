#!/usr/bin/env bash
# Prepare, on a machine that reaches PyPI, what benchmarks/gpu_check.py needs on a device machine
# that has torch + torchvision and cannot download anything:
#
#   .whl/                      wheels of optuna, plotly, pyyaml, tqdm, filelock, scipy (pinned as in
#                              requirements.txt) and of their dependencies (`pip download`), for
#                              CPython 3.12 and 3.11 (--python) on manylinux x86_64;
#   .data/cifar10-jpg.tar.xz   the real CIFAR-10 of ../shared/data/cifar10-jpg.zip: the same JPEG
#                              files, repacked with xz (about 19 MB instead of 65).
#
# Both folders are git-ignored: a device run names them in `carry` and installs there with
#
#   python3 -m pip install -q --no-index --find-links .whl optuna plotly pyyaml tqdm filelock scipy
#
# (or lets `python3 benchmarks/gpu_check.py --wheels .whl ...` install what is missing).
#
# The working tree that travels to a device is capped at 64 MiB, data included. numpy (torchvision
# needs it, so it is there already) and scipy (35 MB a wheel; the lent H200 image has it) are left
# out by default (--skip). For a machine with truly nothing but torch + torchvision:
#   --python 3.12 --skip numpy --no-plotly   (plotly only draws the plots; the search runs without it)
#
# Usage: bash benchmarks/gpu_wheels.sh [--python "3.12 3.11"] [--skip "numpy scipy"] [--no-plotly]
#                                      [--zip ../shared/data/cifar10-jpg.zip] [--no-data]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHONS="3.12 3.11"   # the lent nvidia-h200's python3 is 3.12 (/work/.library/device/KINDS.md)
SKIP="numpy scipy"
PLOTLY=1
ZIP=../shared/data/cifar10-jpg.zip
DATA=1
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PYTHONS="$2"; shift 2 ;;
    --skip) SKIP="$2"; shift 2 ;;
    --no-plotly) PLOTLY=0; shift ;;
    --zip) ZIP="$2"; shift 2 ;;
    --no-data) DATA=0; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

NAMES="optuna pyyaml tqdm filelock scipy"
[ "$PLOTLY" = 1 ] && NAMES="$NAMES plotly"
PINS=""
for name in $NAMES; do
  pin=$(grep -iE "^${name}==" requirements.txt || true)
  PINS="$PINS ${pin:-$name}"
done

mkdir -p .whl
for py in $PYTHONS; do
  abi="cp${py/./}"
  echo "wheels for CPython $py:$PINS"
  python -m pip download -q --disable-pip-version-check --only-binary=:all: -d .whl \
    --python-version "$py" --implementation cp --abi "$abi" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 $PINS 2> >(grep -v "is ignored: it is neither" >&2)
done
[ "$PLOTLY" = 0 ] && rm -f .whl/plotly-*.whl .whl/narwhals-*.whl
for name in $SKIP; do
  rm -f .whl/"$name"-*.whl   # wheel names: lower case, '-' as '_'
done
echo ".whl: $(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1)"

if [ "$DATA" = 1 ]; then
  mkdir -p .data
  if [ -s .data/cifar10-jpg.tar.xz ]; then
    echo ".data/cifar10-jpg.tar.xz is there already"
  else
    [ -f "$ZIP" ] || { echo "no $ZIP; pass --zip PATH (the image-folder CIFAR-10 zip) or --no-data" >&2; exit 2; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "packing $ZIP (about a minute)"
    python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$ZIP" "$tmp"
    tar -C "$tmp" -cJf .data/cifar10-jpg.tar.xz.part . && mv .data/cifar10-jpg.tar.xz.part .data/cifar10-jpg.tar.xz
  fi
  echo ".data: $(du -sh .data | cut -f1)"
fi

# what travels: tracked + untracked-not-ignored files, plus the two carried folders
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .whl $( [ -d .data ] && echo .data ) | tail -1 | cut -f1)
total=$((tree + carried))
echo "travels: $((total / 1048576)) MiB of the 64 MiB a device run takes (working tree $((tree / 1048576)) MiB, .whl + .data $((carried / 1048576)) MiB)"
if [ "$total" -gt $((64 * 1048576)) ]; then
  echo "too large: leave out more with --skip / --no-plotly, or one --python" >&2
  exit 1
fi
