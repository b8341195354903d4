#!/usr/bin/env bash
# Installs LiteLLM proxy from PyPI into its own virtual environment, bench/.venv-litellm
# (git-ignored), so it never shares packages with Harbourgate. Idempotent: an existing
# environment with a working `litellm` command is left alone. Pin a version with
# LITELLM_SPEC, e.g. LITELLM_SPEC='litellm[proxy]==1.108.7' bench/litellm/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$here/.venv-litellm"
spec="${LITELLM_SPEC:-litellm[proxy]}"
if [[ -x "$venv/bin/litellm" ]] && "$venv/bin/python" -c "import litellm.proxy.proxy_server" \
        >/dev/null 2>&1; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "$spec"
"$venv/bin/python" -c "import litellm.proxy.proxy_server" >/dev/null
echo "LiteLLM $("$venv/bin/pip" show litellm | sed -n 's/^Version: //p') installed in $venv"
