#!/bin/sh
# What the browser demo (edgeens serve) and its test need, from the registries this machine reaches: onnxruntime-web
# and puppeteer-core from npm into $EDGEENS_WEB (default ~/.cache/edgeens/web; puppeteer downloads no browser), and
# Debian's chromium. Nothing is committed; a second run does nothing.
set -eu
ROOT="${EDGEENS_WEB:-$HOME/.cache/edgeens/web}"
mkdir -p "$ROOT"
if [ ! -f "$ROOT/node_modules/onnxruntime-web/dist/ort.wasm.min.js" ] || [ ! -d "$ROOT/node_modules/puppeteer-core" ]; then
  PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$ROOT" --no-audit --no-fund --loglevel=error \
    onnxruntime-web@1.30.0 puppeteer-core@24.8.2
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null || {
    echo "install_web: could not install Debian's chromium; run: sudo apt-get install chromium" >&2; exit 1; }
fi
