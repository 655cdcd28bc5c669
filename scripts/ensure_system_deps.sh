#!/usr/bin/env bash
# System packages ketascreen's reports and browser tests need: Debian's Chromium (browser tests
# and report screenshots, driven by Playwright with executable_path; never a downloaded browser)
# and the Pango/HarfBuzz libraries WeasyPrint renders PDFs with. Idempotent and quick when all is
# present; says clearly what is missing when it cannot install (not root, no apt).
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q "libpango-1.0.so.0" || need+=(libpango-1.0-0)
ldconfig -p 2>/dev/null | grep -q "libpangoft2-1.0.so.0" || need+=(libpangoft2-1.0-0)
ldconfig -p 2>/dev/null | grep -q "libharfbuzz-subset.so.0" || need+=(libharfbuzz-subset0)
fc-list >/dev/null 2>&1 && [ -n "$(fc-list 2>/dev/null | head -1)" ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ketascreen: missing system packages: ${need[*]}" >&2
  echo "  install them with your package manager (Debian: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "ketascreen: installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
  echo "ketascreen: could not install ${need[*]} with apt-get" >&2
  exit 1
}
