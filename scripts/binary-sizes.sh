#!/usr/bin/env bash
# Stripped release sizes (x86_64, the release profile: opt-level z, fat LTO) of the Lambda functions and
# the CLI per cargo feature set, so the growth each provider brings is visible. Not part of CI (each
# variant is a full LTO build, minutes each); results go in the README's "Benchmarks".
set -euo pipefail
cd "$(dirname "$0")/.."
size() { printf '%.2f MiB (%s B)' "$(echo "$(stat -c %s "$1") / 1048576" | bc -l)" "$(stat -c %s "$1")"; }
row() { # package, features label, cargo feature args...
  local pkg=$1 label=$2; shift 2
  cargo build -q --release --locked -p "$pkg" "$@"
  echo "| $pkg | $label | $(size "target/release/$pkg") |"
}
echo "| binary | features | stripped size |"
echo "|---|---|---:|"
for f in scale-evaluator provisioner reaper windows-password-fetcher; do
  row "$f" "default (every provider)"
done
row scale-evaluator "none (no provider)" --no-default-features
row scale-evaluator "aws" --no-default-features --features shared/aws
row scale-evaluator "proxmox" --no-default-features --features shared/proxmox
# What the Kubernetes client and the two providers on it weigh (issue 16: our own client vs `kube`).
row scale-evaluator "every provider but kubevirt, harvester" --no-default-features \
  --features shared/aws,shared/proxmox,shared/digitalocean,shared/nutanix,shared/azure,shared/gcp,shared/openstack,shared/vsphere,shared/oci

row kasm-autoscale "proxmox (homelab)" --no-default-features --features shared/proxmox
