#!/usr/bin/env bash
# Unpack depthlab's JPEG copy of CIFAR-10 to where data=cifar10 looks by default.
#
#   scripts/unpack_cifar.sh [ARCHIVE] [DEST]
#
# ARCHIVE  default: ../shared/data/cifar10-jpeg.tar.gz beside the project root
#          (50,000 + 10,000 images, JPEG quality 75; see ../shared/data/README.md)
# DEST     default: $DEPTHLAB_DATA, else ~/.cache/depthlab/data; images land in
#          DEST/cifar10-jpeg/{train,test}/<class>/NNNN.jpg (about 236 MB)
#
# Never unpack into the project tree. The first `depthlab train` on it decodes the
# images once (about 10 s) into data.cache_dir; later runs load that cache.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
archive="${1:-$root/../shared/data/cifar10-jpeg.tar.gz}"
dest="${2:-${DEPTHLAB_DATA:-$HOME/.cache/depthlab/data}}"
sha256="efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4"

if [ ! -f "$archive" ]; then
    echo "unpack_cifar: no archive at $archive; pass its path as the first argument" >&2
    exit 1
fi
if [ -d "$dest/cifar10-jpeg/train" ] && [ -d "$dest/cifar10-jpeg/test" ]; then
    echo "unpack_cifar: already unpacked in $dest/cifar10-jpeg"
    exit 0
fi
if command -v sha256sum >/dev/null; then
    actual="$(sha256sum "$archive" | cut -d' ' -f1)"
else
    actual="$(shasum -a 256 "$archive" | cut -d' ' -f1)"  # macOS
fi
if [ "$actual" != "$sha256" ]; then
    echo "unpack_cifar: $archive has sha256 $actual, expected $sha256" >&2
    exit 1
fi
mkdir -p "$dest"
tar xzf "$archive" -C "$dest"
echo "unpack_cifar: unpacked into $dest/cifar10-jpeg (data=cifar10 finds it with data.root=$dest)"
