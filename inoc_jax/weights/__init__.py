"""Pretrained weights in and out.

  pretrained.py   open_pretrained(spec) -> Pretrained(model_config, load(spec, mesh), load_model(mesh))
  hf_config.py    HF config.json <-> ModelConfig
  hf_import.py    HF folders (single or sharded safetensors), read slice by slice
  gguf_import.py  GGUF metadata -> ModelConfig, tensors dequantised row range by row range
  dequant.py      numpy GGML dequantisers (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K, F16, BF16, F32)
  key_maps.py     declarative stored-name <-> parameter-path rules per format and family
  layout.py       stored tensor -> parameter transforms and the shard-rectangle arithmetic
  loader.py       fills an abstract sharded tree with jax.make_array_from_callback
  hf_export.py    base weights -> HF folder (config.json, safetensors, tokenizer files)
"""
