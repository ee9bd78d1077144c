"""The language-model engine: text records, HF causal LMs, fine-tuning and generation.

Importing this package goes through ``workers.engine``, which installs the torchvision
hook transformers needs before it can be imported.
"""
