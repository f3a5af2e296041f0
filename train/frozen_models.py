"""The frozen models every training and evaluation script shares, loaded from the offline sources: the tiny
preset's LLM and the Q-Former's instruction tokenizer."""
from __future__ import annotations


def load_tiny_llm():
    from core.llm import gguf_safetensors_cache, load_llm
    from core.sources import cache_dir, smollm2_gguf

    return load_llm(gguf_safetensors_cache(smollm2_gguf(), cache_dir() / "llm"))


def load_qformer_tokenizer():
    from transformers import AutoTokenizer

    from core.sources import minilm_folder

    return AutoTokenizer.from_pretrained(str(minilm_folder()))
