#!/usr/bin/env bash
# Installs headstart on Debian with Python 3.11: Debian packages (WordNet 3.0, Fashion-MNIST, and
# with --test a SLURM + munge for the cluster test), a .venv with the pinned Python packages, and
# the library taken from the checkout itself (not installed). Idempotent: what is already there is skipped.
#   bash envs/install.sh          # what the workflow needs
#   bash envs/install.sh --test   # plus the test suite's needs
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=false
[ "${1:-}" = "--test" ] && with_tests=true

debs=(wordnet-base wordnet-sense-index dataset-fashion-mnist python3-venv)
$with_tests && debs+=(slurmctld slurmd slurm-client munge)
missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install: run as root (or sudo) to install the Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  echo "install: Debian packages ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || { echo "install: $python not found (headstart needs Python 3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv

requirements=(envs/requirements.txt)
$with_tests && requirements+=(envs/requirements-test.txt)
stamp=".venv/.headstart-$(cat "${requirements[@]}" pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "install: Python packages (${requirements[*]})"
  # (this machine's pip config may list local indexes that do not exist: drop pip's noise about them)
  .venv/bin/pip install --quiet --disable-pip-version-check $(printf -- '-r %s ' "${requirements[@]}") \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # The library is not installed: the Snakefile and pytest put this checkout's workflow/ on the path, so a
  # .venv shared by two checkouts never runs the other one's code (an editable install did).
  .venv/bin/pip uninstall --quiet --yes headstart 2>/dev/null || true
  rm -f .venv/.headstart-*
  touch "$stamp"
fi
echo "install: ready (.venv/bin/snakemake, .venv/bin/pytest)"
