#!/usr/bin/env bash
# Installs what the build needs; safe to run again (it skips what is already there).
#   1. Debian packages through apt-get (only those missing).
#   2. PyPI wheels pinned in scripts/wheels.lock: downloaded by exact name and version, hash-checked,
#      and unpacked under third_party/<name>/ (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

apt_packages=(cmake ninja-build g++ make python3 python3-pip unzip
              libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libopenblas-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

mkdir -p third_party/.download
while read -r name version sha patterns; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  stamp="third_party/$name/.installed-$version-$sha"
  [ -f "$stamp" ] && continue
  wheel_glob="third_party/.download/$(echo "$name" | tr - _)-$version-*.whl"
  # A line whose patterns start with "sdist:" names files inside the source archive (.tar.gz) instead.
  sdist=0; [[ "$patterns" == sdist:* ]] && { sdist=1; patterns="${patterns#sdist:}";
    wheel_glob="third_party/.download/$(echo "$name" | tr - _)-$version.tar.gz"; }
  # shellcheck disable=SC2086
  if ! ls $wheel_glob >/dev/null 2>&1; then
    echo "setup: downloading $name==$version"
    if ((sdist)); then
      python3 -m pip download -q --no-deps --no-binary=:all: -d third_party/.download "$name==$version"
    else
      python3 -m pip download -q --no-deps --only-binary=:all: -d third_party/.download "$name==$version"
    fi
  fi
  # shellcheck disable=SC2086
  wheel=$(ls $wheel_glob | head -n1)
  got=$(sha256sum "$wheel" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "setup: hash mismatch for $wheel: expected $sha, got $got" >&2
    rm -f "$wheel"; exit 1
  fi
  rm -rf "third_party/$name"; mkdir -p "third_party/$name"
  # shellcheck disable=SC2086
  if ((sdist)); then
    tar -xzf "$wheel" -C "third_party/$name" --wildcards $patterns
  else
    unzip -q -o "$wheel" $patterns -d "third_party/$name"
  fi
  touch "$stamp"
  echo "setup: unpacked $name==$version into third_party/$name"
done < scripts/wheels.lock
