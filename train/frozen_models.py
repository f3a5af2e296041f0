"""The frozen models every training and evaluation script shares, loaded from the offline sources: the tiny
preset's LLM and the Q-Former's instruction tokenizer."""
from __future__ import annotations


def tiny_llm_folder():
    """The tiny preset's SmolLM2-135M as a transformers folder (de-quantised from its GGUF once, then cached)."""
    from core.llm import gguf_safetensors_cache
    from core.sources import cache_dir, smollm2_gguf

    return gguf_safetensors_cache(smollm2_gguf(), cache_dir() / "llm")


def load_tiny_llm():
    from core.llm import load_llm

    return load_llm(tiny_llm_folder())


def load_qformer_tokenizer():
    from transformers import AutoTokenizer

    from core.sources import minilm_folder

    return AutoTokenizer.from_pretrained(str(minilm_folder()))
