"""The frozen models every training and evaluation script shares, loaded from the offline sources: the tiny
preset's LLM and the Q-Former's instruction tokenizer."""
from __future__ import annotations


def load_tiny_llm():
    from core.llm import load_llm
    from core.presets.tiny import tiny_llm_folder

    return load_llm(tiny_llm_folder())


def load_qformer_tokenizer():
    from transformers import AutoTokenizer

    from core.sources import minilm_folder

    return AutoTokenizer.from_pretrained(str(minilm_folder()))
